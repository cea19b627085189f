import json

from harness.types import (
    GenerationSettings,
    Prediction,
    Request,
    Sample,
    SegProbe,
    TokenScore,
    prediction_from_dict,
    request_from_dict,
    sample_from_dict,
    to_dict,
)

RLE_A = {"size": [4, 5], "counts": "31000?"}


def _json_round_trip(value):
    return json.loads(json.dumps(to_dict(value)))


def test_prediction_round_trips_through_json_with_probes_and_masks():
    prediction = Prediction(
        text="It is [SEG].",
        masks=(RLE_A, {"size": [4, 5], "counts": "0d0"}),
        phrases=("a dog", "ünïcödé"),
        probes=(
            SegProbe(
                position=3,
                word_logits={"category": {"dog": 2.5, "cat": -1.0}},
                top_tokens=(TokenScore("dog", 2.5), TokenScore("▁the", 1.0)),
                layer_word_logits=({"category": {"dog": 0.1}}, {"category": {"dog": 2.5}}),
            ),
        ),
        prompt_tokens=12,
        generated_tokens=4,
        latency_s=0.25,
        metadata={"prompt_index": 2},
    )
    assert prediction_from_dict(_json_round_trip(prediction)) == prediction


def test_failed_prediction_round_trips():
    prediction = Prediction(error="RuntimeError: boom")
    assert prediction_from_dict(_json_round_trip(prediction)) == prediction


def test_sample_and_request_round_trip():
    sample = Sample("1:2", "/x/y.jpg", target={"mask": RLE_A}, inputs={"sentence": "left dog"}, image_size=(4, 5))
    assert sample_from_dict(_json_round_trip(sample)) == sample
    request = Request(
        task="refcoco_val",
        task_family="refcoco",
        sample_id="1:2",
        kind="referring_segmentation",
        image="/x/y.jpg",
        prompt="Please segment left dog.",
        generation=GenerationSettings(max_new_tokens=100, stop=("<|im_end|>", "<image_id>")),
        retry_prompts=("a", "b"),
        want_probes=True,
        image_size=(4, 5),
        reference=Prediction(masks=(RLE_A,)),
    )
    assert request_from_dict(_json_round_trip(request)) == request
