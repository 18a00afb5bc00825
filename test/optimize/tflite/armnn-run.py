# Runs a .tflite model on Arm NN's reference backend (CpuRef) through Debian's python3-pyarmnn, for the
# TFLite importer's tests: argv = model.tflite input.f32 (raw little-endian float32, the model's input
# shape); prints the first output as JSON {"shape": [...], "data": [...]} (dequantized if int8).
import json
import sys

import numpy as np
import pyarmnn as ann


def main():
    model, data = sys.argv[1], sys.argv[2]
    parser = ann.ITfLiteParser()
    network = parser.CreateNetworkFromBinaryFile(model)
    graph = 0
    input_name = parser.GetSubgraphInputTensorNames(graph)[0]
    output_name = parser.GetSubgraphOutputTensorNames(graph)[0]
    input_binding = parser.GetNetworkInputBindingInfo(graph, input_name)
    output_binding = parser.GetNetworkOutputBindingInfo(graph, output_name)
    runtime = ann.IRuntime(ann.CreationOptions())
    optimized, messages = ann.Optimize(network, [ann.BackendId('CpuRef')], runtime.GetDeviceSpec(), ann.OptimizerOptions())
    net_id, _ = runtime.LoadNetwork(optimized)
    values = np.fromfile(data, dtype=np.float32)
    info = input_binding[1]
    if info.GetDataType() == ann.DataType_QAsymmS8:
        values = np.clip(np.round(values / info.GetQuantizationScale()) + info.GetQuantizationOffset(), -128, 127).astype(np.int8)
    inputs = ann.make_input_tensors([input_binding], [values])
    outputs = ann.make_output_tensors([output_binding])
    runtime.EnqueueWorkload(net_id, inputs, outputs)
    result = ann.workload_tensors_to_ndarray(outputs)[0]
    out_info = output_binding[1]
    if result.dtype != np.float32:
        result = (result.astype(np.float64) - out_info.GetQuantizationOffset()) * out_info.GetQuantizationScale()
    shape = [out_info.GetShape()[i] for i in range(out_info.GetNumDimensions())]
    print(json.dumps({"shape": shape, "data": [float(v) for v in result.reshape(-1)]}))


main()
