from harness.cache import PredictionCache, prediction_key
from harness.types import Prediction


def test_key_depends_on_every_part():
    base = prediction_key("m", "t", "1")
    assert base != prediction_key("m2", "t", "1")
    assert base != prediction_key("m", "t2", "1")
    assert base != prediction_key("m", "t", "2")
    assert len(base) == 64


def test_predictions_and_failures_across_shards(tmp_path):
    rank0 = PredictionCache(tmp_path, rank=0)
    rank1 = PredictionCache(tmp_path, rank=1)
    rank0.put_many([("k0", "task", "s0", Prediction(text="yes"))])
    rank1.put_many([("k1", "task", "s1", Prediction(text="no")), ("k2", "task", "s2", Prediction(error="Boom: x"))])
    assert rank0.get_many(["k0", "k1", "k2", "k3"]) == {"k0": Prediction(text="yes"), "k1": Prediction(text="no")}
    assert rank0.failures(["k2", "k3"]) == {"k2": "Boom: x"}
    # A later success replaces the failure.
    rank1.put_many([("k2", "task", "s2", Prediction(text="ok"))])
    assert rank0.failures(["k2"]) == {}
    assert rank0.get_many(["k2"])["k2"].text == "ok"
    rank0.close()
    rank1.close()
    reopened = PredictionCache(tmp_path, rank=0)
    assert set(reopened.get_many(["k0", "k1", "k2"])) == {"k0", "k1", "k2"}
    reopened.close()
