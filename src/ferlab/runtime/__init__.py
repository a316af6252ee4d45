"""Inference runtimes beside PyTorch: a classifier as an ONNX graph, and which runtime to use.

* ``onnx_graph``       ``export_onnx(model)``: the float32 graph, with ferlab's metadata
* ``export``           ``ferlab export``: the graph checked against PyTorch, optionally int8
* ``onnx_classifier``  ``OnnxClassifier``: a graph in ONNX Runtime, with the interface of a model
* ``choice``           ``resolve_runtime``: torch or ONNX Runtime, by CPU kind and batch size
"""
