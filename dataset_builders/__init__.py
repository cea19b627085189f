"""Dataset builders: the bundled mini benchmark (``mini``), synthetic scale data (``synthetic``).

Both describe a `dataset_builders.writer.Benchmark` (images, annotated objects, referring
expressions, grounded captions, POPE questions, captions, AttrEval pairs) and write it with
`dataset_builders.writer.write_benchmark` in every task's real file format and LIRA's data layout.
"""
