"""``DATASHEET.md`` and ``build.json``: what a build holds, what it rejected and why, and how it was made."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from dataset_builders.attreval.colors import FAMILIES, NEIGHBOURS, PROTOTYPES
from dataset_builders.attreval.scene import Rules
from harness.vocabulary import LIRA_SOURCE, WORD_LISTS


def counts(qa: Sequence[Mapping[str, Any]], seg: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Questions, pairs, yes/no answers and expressions per split and attribute type."""
    table: dict[str, Any] = {"qa": {}, "seg": {}}
    for row in qa:
        cell = (
            table["qa"]
            .setdefault(row["split"], {})
            .setdefault(row["attribute"], {"questions": 0, "pairs": 0, "yes": 0, "no": 0})
        )
        cell["questions"] += 1
        cell[row["answer"]] += 1
        cell["pairs"] = cell["questions"] // 2
    for row in seg:
        table["seg"].setdefault(row["split"], {}).setdefault(row["attribute"], 0)
        table["seg"][row["split"]][row["attribute"]] += 1
    table["qa_questions"] = len(qa)
    table["seg_expressions"] = len(seg)
    table["images"] = len({row["image_id"] for row in [*qa, *seg]})
    table["objects"] = len({row["ann_id"] for row in [*qa, *seg]})
    return table


def _order(attribute: str) -> tuple[int, str]:
    known = ("category", "color", "position", "relation", "combined")
    return (known.index(attribute) if attribute in known else len(known), attribute)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _examples(qa: Sequence[Mapping[str, Any]], seg: Sequence[Mapping[str, Any]], per_type: int) -> list[str]:
    lines = ["### QA pairs", ""]
    shown: Counter[str] = Counter()
    for first, second in zip(qa[0::2], qa[1::2], strict=False):
        if shown[first["attribute"]] >= per_type:
            continue
        shown[first["attribute"]] += 1
        lines.append(f"- **{first['attribute']}** (`{first['image']}`, ann {first['ann_id']}):")
        lines += [f"  - {row['question']} → `{row['answer']}`" for row in (first, second)]
    if not qa:
        lines.append("(none)")
    lines += ["", "### Segmentation expressions", ""]
    shown.clear()
    for row in seg:
        if shown[row["attribute"]] >= per_type:
            continue
        shown[row["attribute"]] += 1
        lines.append(
            f'- **{row["attribute"]}**: "{row["expression"]}" → ann {row["ann_id"]} ({row["category"]}) '
            f"in `{row['image']}`"
        )
    if not seg:
        lines.append("(none)")
    return lines


def datasheet(summary: Mapping[str, Any], qa: Sequence[Mapping[str, Any]], seg: Sequence[Mapping[str, Any]]) -> str:
    """The datasheet's Markdown text from the build summary (``build.json``) and the written rows."""
    config, table = summary["config"], summary["counts"]
    rules = Rules(**config["rules"])
    lines = [
        f"# AttrEval datasheet: {config['dataset']} {', '.join(config['splits'])}",
        "",
        "Built by `python -m dataset_builders.attreval` (attreval's AttrEval builder, version "
        f"{summary['version']}) from REFER annotations and COCO images, seed {config['seed']}, "
        f"balance `{config['balance']}`. The same inputs and seed give byte-identical files; another seed "
        "changes only the hard negatives of the QA track.",
        "",
        "## Source",
        "",
        *_table(
            ["role", "file", "sha256"],
            [[role, f"`{item['file']}`", f"`{item['sha256']}`"] for role, item in summary["sources"].items()],
        ),
        "",
        f"Refs read: {summary['refs_seen']}; images read: {summary['images_seen']}; images used: {table['images']}; "
        f"objects used: {table['objects']}.",
        "",
        "## Contents",
        "",
        f"QA track: {table['qa_questions']} yes/no questions ({table['qa_questions'] // 2} pairs) in "
        "`refcoco_attri.jsonl`.",
        "",
    ]
    qa_rows = [
        [split, attribute, cell["pairs"], cell["questions"], cell["yes"], cell["no"]]
        for split, by_type in table["qa"].items()
        for attribute, cell in sorted(by_type.items(), key=lambda item: _order(item[0]))
    ]
    lines += _table(["split", "attribute", "pairs", "questions", "yes", "no"], qa_rows or [["—"] * 6])
    lines += ["", f"Segmentation track: {table['seg_expressions']} expressions in `refs(*).p` / `seg.jsonl`.", ""]
    seg_rows = [
        [split, attribute, n]
        for split, by_type in table["seg"].items()
        for attribute, n in sorted(by_type.items(), key=lambda item: _order(item[0]))
    ]
    lines += _table(["split", "attribute", "expressions"], seg_rows or [["—"] * 3])
    lines += ["", "Attribute values kept after the cross-checks (before pairing, filtering and balancing):", ""]
    lines += _table(["attribute", "values"], [[name, n] for name, n in summary["kept"].items()])
    lines += ["", "## Rejected candidates by reason", ""]
    rejected = [[item["stage"], item["reason"], item["count"]] for item in summary["rejected"]]
    lines += _table(["stage", "reason", "count"], rejected or [["—", "nothing rejected", 0]])
    lines += [
        "",
        "Stages: `input` = refs skipped for bad input; `expression` = expressions with no colour, position or "
        "relation word about the target; `color` / `position` / `relation` = attribute words that the pixels or "
        "boxes do not confirm; `qa` / `seg` = question pairs and expressions not made or dropped.",
        "",
        "## Examples",
        "",
        *_examples(qa, seg, 2),
        "",
        "## How it was built",
        "",
        f"- **Word lists**: LIRA's `[SEG]` probe lists ({LIRA_SOURCE}): {len(WORD_LISTS['category'])} objects, "
        f"{len(WORD_LISTS['relation'])} relations, {len(WORD_LISTS['position'])} positions, "
        f"{len(WORD_LISTS['color'])} colours. Attribute values are written as these words (lower case); "
        "categories as COCO names.",
        "- **Category**: the annotation's COCO category and supercategory.",
        "- **Colour**: colour words in the head phrase of the object's expressions (for people also after "
        '"in"/"wearing"), kept when at least '
        f"{rules.min_color_share:.0%} of the mask's pixels fall in the word's family. Each pixel is mapped to "
        "the nearest CSS named colour in CIELAB (CIE76, D65) and takes its class:",
        "",
        *_table(
            ["class", "CSS named colours"],
            [[name, ", ".join(css for css, _ in colours)] for name, colours in PROTOTYPES.items()],
        ),
        "",
        "  Families (word → pixel classes): "
        + "; ".join(f"{word} → {', '.join(classes)}" for word, classes in FAMILIES.items() if len(classes) > 1)
        + "; every other word → itself.",
        '- **Position**: position words before the first relation phrase (not followed by "of"), judged within '
        "the same-category objects: with others a superlative with a lead of "
        f"{rules.margin:.0%} of the image side (left/right on box centre x, top/bottom on centre y, front/back on "
        "the box bottom, center = closest to the centre line and inside the middle third); a lone object against "
        f"the image (left: centre x < {rules.side:.0%} of the width, right: > {1 - rules.side:.0%}, likewise top "
        "and bottom, center: middle third; front/back cannot be judged); edge/corner: the box touches one / two "
        f"borders (within {rules.border:.0%}).",
        "- **Relation**: the first relation phrase followed by a COCO noun naming exactly one other annotated "
        "object of the image. above/over, below/under: box centres; near, beside, next to, adjacent, alongside: "
        f"box gap ≤ {rules.near_factor} × the larger mean box side; far: not near; inside/within, outside, "
        f"surrounding: box overlap ≥ {rules.inside:.0%} / ≤ {rules.outside:.0%}; behind, in front of, opposite: "
        "taken from the expression (depth).",
        "- **QA pairs**: per kept value (and the category) `Is <subject> <value>? Answer yes or no.` (yes) and the "
        "same question with a hard negative (no): a category of the same supercategory (people: an animal); a "
        "neighbouring colour ("
        + "; ".join(f"{word}: {', '.join(near)}" for word, near in NEIGHBOURS.items())
        + f") with under {rules.max_negative_share:.0%} of the pixels and not said of the object (else the "
        "neighbours' neighbours); the opposite position or relation, checked false. The subject names the object "
        "by its category and other attributes (category questions: by attributes only) and must single it out. "
        "The true question comes first in even pairs and second in odd ones.",
        "- **Segmentation expressions**: `the <colour> one`, `the one <position>`, `the one <relation> the "
        "<object>`; kept when the expression does not name the object's category and singles it out among the "
        "image's annotated objects (another object with the colour in ≥ the same share, or its own expressions "
        "using the word, or fitting the relation, makes it ambiguous; positions are judged within the objects "
        "that fit the rest). A target with no such expression gets the first two-attribute one that works "
        "(`combined`).",
        "- **Duplicates** (same object, attribute type and value; same object and expression) are dropped. "
        "**Balance** (`min`): per split, every attribute type is cut to the count of the rarest type present "
        "(segmentation: the rarest of colour, position, relation), keeping items in a seed-independent hash order.",
        "",
        "## Fields",
        "",
        "- `refcoco_attri.jsonl`: `image` (relative to the data root), `question`, `question_id`, `answer` "
        "(`yes`/`no`) as LIRA's evaluate_vqa.py reads them; `attribute` (category, color, position, relation), "
        "`value` (the word asked about), `truth` (the true word), `subject`, `ref_id`, `ann_id`, `image_id`, "
        "`split`.",
        "- `refs(*).p` + `instances.json`: REFER format (one ref per source ref; sentences carry `attribute`; the "
        "ref carries `attributes`: kept words per attribute type); images are the source's COCO images.",
        "- `seg.jsonl`: `image`, `expression`, `attribute`, `ref_id`, `ann_id`, `image_id`, `sent_id`, `split`, "
        "`category`, `supercategory`, `attributes`, `bbox` (x, y, w, h), `mask` (COCO RLE of the target: pixels "
        "covered by exactly one polygon, as RefCOCO scores it).",
        "- `datasets/qa`, `datasets/seg`: the same rows as `datasets` folders (`datasets.load_from_disk`).",
        "- `build.json`: this datasheet's numbers, the configuration and the source hashes.",
        "",
    ]
    return "\n".join(lines)


__all__ = ["counts", "datasheet"]
