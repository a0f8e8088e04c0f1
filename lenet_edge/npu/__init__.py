"""Phone NPUs: compile the bundle's int8 model for Qualcomm Snapdragon SoCs' Hexagon NPU (HTP) with LiteRT's
Qualcomm compiler plugin, prove the NPU takes the whole graph, judge the compiled files' answers and count their
cycles in Qualcomm's HTP simulator through ONNX Runtime's QNN execution provider.

The QNN tools run in a Python of their own (env.py) as ``python -m lenet_edge.npu.agent`` (agent.py);
command.py drives them and judges; rewrite.py makes the graph the NPU compiles (C1 whole again); socs.py is
the SoC table; lenet_edge/report/npu.py renders report.md's part.
This package never imports TensorFlow.
The package itself imports nothing, so that the agent loads only what it needs in the NPU tools' Python."""
