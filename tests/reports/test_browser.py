"""The report and the leaderboard in headless Chromium, opened from disk (file://, no server).

Checks: no console errors, exceptions or failed loads; the tables hold the expected rows; clicking a
header reorders them; model text is shown as text; the mask overlays are pixel-exact; screenshots go
to test-artifacts/. Skipped when /usr/bin/chromium (Debian package ``chromium``) is absent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from chromium_driver import CHROMIUM, Chromium
from report_synthetic import sample_row, task_result, write_run
from report_toy import (
    COUNT,
    HEIGHT,
    REPO,
    WIDTH,
    XSS,
    toy_box,
    toy_plugin,
    toy_runs_fixture,  # noqa: F401  (the toy_runs fixture)
)

from reports import write_leaderboard, write_run_report

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"headless Chromium not installed at {CHROMIUM} (Debian package 'chromium'; .ci/run installs it)",
)
ARTIFACTS = REPO / "test-artifacts"
READY = "document.documentElement.dataset.ready === 'true'"


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    with Chromium(width=1280, height=900) as chromium:
        yield chromium


def _open(browser: Chromium, page: Path) -> None:
    browser.problems.clear()
    browser.open(page)
    browser.wait_for(READY)


def _column(browser: Chromium, drill: str, number: int) -> list[str]:
    return browser.evaluate(
        f"Array.from(document.querySelectorAll('#{drill} tr.sample td:nth-child({number})'), td => td.textContent)"
    )


def _click(browser: Chromium, selector: str) -> None:
    browser.evaluate(f"document.querySelector({json.dumps(selector)}).click()")


def test_report_in_chromium(browser: Chromium, toy_runs: dict[str, Path]) -> None:
    _open(browser, toy_runs["replay"] / "report.html")
    assert browser.evaluate("document.querySelectorAll('table.metrics tbody tr').length") == 2
    assert browser.evaluate("document.querySelectorAll('#overview tbody tr').length") == 2
    drill = "drill-toy_segmentation"
    assert _column(browser, drill, 2) == ["s002", "s001", *(f"s{i:03d}" for i in range(3, COUNT)), "s000"]

    _click(browser, f'#{drill} th[data-key="id"] button')
    assert _column(browser, drill, 2) == [f"s{i:03d}" for i in range(COUNT)]
    _click(browser, f'#{drill} th[data-key="id"] button')
    assert _column(browser, drill, 2) == [f"s{i:03d}" for i in reversed(range(COUNT))]
    _click(browser, f'#{drill} th[data-key="value:iou"] button')  # worst (lowest IoU) first, failed last
    assert _column(browser, drill, 2)[0] == "s001" and _column(browser, drill, 2)[-1] == "s002"
    _click(browser, f"#{drill} button.worst")
    assert _column(browser, drill, 2)[0] == "s002"

    # the model's text is displayed as text: nothing of it ran or became an element
    texts = dict(
        zip(_column(browser, "drill-toy_questions", 2), _column(browser, "drill-toy_questions", 5), strict=True)
    )
    assert texts["s002"] == XSS
    assert browser.evaluate("window.__xss === undefined && document.querySelectorAll('img[onerror]').length === 0")

    # the overlay in a sample's details equals the masks, pixel for pixel (canvas at mask resolution)
    _click(browser, f'#{drill} th[data-key="id"] button')
    _click(browser, f"#{drill} tr.sample:nth-child(6)")  # s005
    browser.wait_for(f"document.querySelector('#{drill} tr.detail canvas.pred') !== null")
    for name, box in (("gt", toy_box(5)), ("pred", [b + 1 if n % 2 == 0 else b for n, b in enumerate(toy_box(5))])):
        alpha = browser.evaluate(
            f"(() => {{ const c = document.querySelector('#{drill} tr.detail canvas.{name}');"
            f" return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"
            f".filter((_, i) => i % 4 === 3)]; }})()"
        )
        assert alpha[:2] == [WIDTH, HEIGHT]
        drawn = np.array(alpha[2]).reshape(HEIGHT, WIDTH) > 0
        assert np.array_equal(drawn, toy_plugin.box_mask(box, HEIGHT, WIDTH).astype(bool)), name
    assert "s005" in browser.evaluate(f"document.querySelector('#{drill} tr.detail').textContent")
    browser.screenshot(ARTIFACTS / "report.png")
    assert browser.problems == []


def test_drill_down_pages_load_lazily(browser: Chromium, tmp_path: Path) -> None:
    rows = [sample_row(i, scores={"m": {"score": (i * 37 % 130) / 130}}, text=f"answer {i}") for i in range(430)]
    run = write_run(tmp_path / "run", {"big": task_result({"score": 0.5}, n_samples=430)}, samples={"big": rows})
    write_run_report(run)
    _open(browser, run / "report.html")
    assert browser.evaluate("document.querySelectorAll('#drill-big tr.sample').length") == 50
    assert "page 1 of 9 (430 samples)" in browser.evaluate("document.querySelector('#drill-big .pager').textContent")
    _click(browser, "#drill-big button.last")
    assert browser.evaluate("document.querySelectorAll('#drill-big tr.sample').length") == 30
    # the last page of the worst-first order holds the best scores; open one row's details (chunk 1 or 2)
    _click(browser, "#drill-big tr.sample:last-child")
    browser.wait_for("document.querySelector('#drill-big tr.detail pre') !== null")
    assert "answer" in browser.evaluate("document.querySelector('#drill-big tr.detail').textContent")
    browser.evaluate(
        "(() => { const s = document.querySelector('#drill-big input[type=search]');"
        " s.value = 'answer 42'; s.dispatchEvent(new Event('input')); })()"
    )
    assert sorted(_column(browser, "drill-big", 2)) == ["id00042", "id00420", "id00421", "id00422", "id00423",
                                                        "id00424", "id00425", "id00426", "id00427", "id00428",
                                                        "id00429"]  # fmt: skip
    assert browser.problems == []


def test_leaderboard_in_chromium(browser: Chromium, tmp_path: Path) -> None:
    higher = {"accuracy": True, "CHAIR_i": False}
    runs = [
        write_run(
            tmp_path / name, {"t": task_result({"accuracy": accuracy, "CHAIR_i": chair}, higher=higher)}, model=name
        )
        for name, accuracy, chair in (("alpha", 0.5, 0.3), ("beta", 0.9, 0.1), ("gamma", 0.7, 0.2))
    ]
    page = write_leaderboard(runs, tmp_path / "board")["html"]
    _open(browser, page)

    def models() -> list[str]:
        cells = "document.querySelectorAll('#leaderboard tbody tr td:first-child')"
        return browser.evaluate(f"Array.from({cells}, td => td.textContent)")

    assert models() == ["alpha", "beta", "gamma"]
    _click(browser, '#leaderboard th[data-key="t/accuracy"] button')  # best first
    assert models() == ["beta", "gamma", "alpha"]
    _click(browser, '#leaderboard th[data-key="t/accuracy"] button')
    assert models() == ["alpha", "gamma", "beta"]
    _click(browser, '#leaderboard th[data-key="t/CHAIR_i"] button')  # lower is better: best first
    assert models() == ["beta", "gamma", "alpha"]
    _click(browser, '#leaderboard th[data-column="0"] button')
    assert models() == ["alpha", "beta", "gamma"]
    browser.screenshot(ARTIFACTS / "leaderboard.png")
    assert browser.problems == []


def test_masks_without_images_are_still_drawn(browser: Chromium, tmp_path: Path) -> None:
    from report_toy import box_rle

    rows = [
        sample_row(i, scores={"s": {"iou": 0.5}}, target={"mask": box_rle(toy_box(i))}, masks=[box_rle(toy_box(i + 1))])
        for i in range(3)
    ]
    run = write_run(tmp_path / "run", {"seg": task_result({"gIoU": 0.5}, n_samples=3)}, samples={"seg": rows})
    write_run_report(run)
    _open(browser, run / "report.html")
    canvases = "document.querySelectorAll('#drill-seg canvas.gt')"
    sizes = browser.evaluate(f"Array.from({canvases}, c => [c.width, c.height, c.parentElement.style.aspectRatio])")
    assert sizes == [[WIDTH, HEIGHT, f"{WIDTH} / {HEIGHT}"]] * 3
    assert browser.problems == []
