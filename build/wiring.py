"""Check a rendered model repository the way Triton would wire it, without starting Triton.

Every config.pbtxt must parse with Triton's own protobuf (from tritonclient). For every ensemble:
each step names an existing model; its input_map keys are inputs of that model and its output_map keys
outputs of it; every required input of the step is fed; every tensor it reads is produced exactly once
(an ensemble input or one step's output) with the same dtype and compatible dims; every tensor produced is
used (Triton refuses an ensemble with an unused tensor); every ensemble output is produced. BLS targets named in parameters must exist and accept the tensors the BLS sends.

    python -m build.wiring .cache/model_repository-cpu
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from ensemble import names
from ensemble import tensors as T
from ensemble.names import EngineKind, Param, SubCalls
from ensemble.tasks import TASKS


@dataclass(frozen=True)
class Tensor:
    dtype: str
    dims: tuple[int, ...]
    where: str


def load_repository(path: Path) -> tuple[dict[str, mc.ModelConfig], list[str]]:
    configs, problems = {}, []
    for config_path in sorted(path.glob("*/config.pbtxt")):
        try:
            config = text_format.Parse(config_path.read_text(), mc.ModelConfig())
        except text_format.ParseError as exc:
            problems.append(f"{config_path}: does not parse as a Triton ModelConfig: {exc}")
            continue
        if config.name != config_path.parent.name:
            problems.append(f"{config_path}: name {config.name!r} differs from its folder")
        configs[config.name] = config
    if not configs:
        problems.append(f"{path}: no config.pbtxt found")
    return configs, problems


def _dims_match(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return len(a) == len(b) and all(x == y or -1 in (x, y) for x, y in zip(a, b))


def check_ensemble(name: str, configs: dict[str, mc.ModelConfig]) -> list[str]:
    ensemble = configs[name]
    problems: list[str] = []
    produced: dict[str, Tensor] = {
        i.name: Tensor(mc.DataType.Name(i.data_type), tuple(i.dims), "ensemble input") for i in ensemble.input}
    steps = ensemble.ensemble_scheduling.step
    for step in steps:
        model = configs.get(step.model_name)
        if model is None:
            problems.append(f"{name}: step model {step.model_name!r} is not in the repository")
            continue
        outputs = {o.name: o for o in model.output}
        for key, value in step.output_map.items():
            if key not in outputs:
                problems.append(f"{name}: {step.model_name} has no output {key!r}")
                continue
            if value in produced:
                problems.append(f"{name}: tensor {value!r} produced twice ({produced[value].where}, {step.model_name})")
            produced[value] = Tensor(mc.DataType.Name(outputs[key].data_type), tuple(outputs[key].dims),
                                     step.model_name)
    for step in steps:
        model = configs.get(step.model_name)
        if model is None:
            continue
        inputs = {i.name: i for i in model.input}
        for key, value in step.input_map.items():
            if key not in inputs:
                problems.append(f"{name}: {step.model_name} has no input {key!r}")
                continue
            source = produced.get(value)
            if source is None:
                problems.append(f"{name}: {step.model_name}.{key} reads {value!r}, which nothing produces")
                continue
            want = Tensor(mc.DataType.Name(inputs[key].data_type), tuple(inputs[key].dims), step.model_name)
            if source.dtype != want.dtype:
                problems.append(f"{name}: {step.model_name}.{key} is {want.dtype} but {value!r} from "
                                f"{source.where} is {source.dtype}")
            elif not _dims_match(source.dims, want.dims):
                problems.append(f"{name}: {step.model_name}.{key} dims {list(want.dims)} do not fit {value!r} dims "
                                f"{list(source.dims)} from {source.where}")
        for required in (i.name for i in model.input if not i.optional):
            if required not in step.input_map:
                problems.append(f"{name}: required input {step.model_name}.{required} is not fed")
    read = {value for step in steps for value in step.input_map.values()} | {o.name for o in ensemble.output}
    for name_, source in produced.items():
        if name_ not in read:
            problems.append(f"{name}: tensor {name_!r} from {source.where} is never used (Triton refuses the ensemble)")
    for output in ensemble.output:
        source = produced.get(output.name)
        if source is None or source.where == "ensemble input":
            problems.append(f"{name}: ensemble output {output.name!r} is produced by no step")
        elif source.dtype != mc.DataType.Name(output.data_type):
            problems.append(f"{name}: output {output.name!r} is {mc.DataType.Name(output.data_type)} but "
                            f"{source.where} makes {source.dtype}")
    return problems


def _bls_targets(config: mc.ModelConfig, *, engines_only: bool = False) -> list[tuple[str, T.Interface]]:
    """(parameter, tensors the BLS sends and reads) for every model the BLS may call; `engines_only`: a Python entry
    that calls only the engine slots (pointwise_grader, post_ranker, list_judge)."""
    params = {k: v.string_value for k, v in config.parameters.items()}
    entry = {task.models.entry: task.entry for task in TASKS}
    targets = [] if engines_only else [
        (Param.COVER_MODEL, entry[names.COVER.entry]), (Param.RERANK_MODEL, entry[names.RERANK.entry]),
        (Param.POINTWISE_MODEL, entry[names.POINTWISE.entry]), (Param.POSTRANK_MODEL, entry[names.POSTRANK.entry])]
    if engines_only or params.get(Param.SUB_CALLS, SubCalls.ENGINES.value) == SubCalls.ENGINES.value \
            or Param.COVER_ENGINE in params:
        kind = params.get(Param.LLM_ENGINE_KIND, EngineKind.TENSORRTLLM.value)
        targets += [(Param.COVER_ENGINE, T.VLM_SLOT), (Param.RERANK_ENGINE, T.llm_slot(kind))]
    return targets


def check_bls(name: str, configs: dict[str, mc.ModelConfig], *, engines_only: bool = False) -> list[str]:
    """The models the BLS's parameters name exist and take the tensors it sends (ensembles or engine slots)."""
    problems = []
    config = configs[name]
    for key, interface in _bls_targets(config, engines_only=engines_only):
        target = config.parameters[key].string_value if key in config.parameters else ""
        model = configs.get(target)
        if model is None:
            problems.append(f"{name}: parameter {key} names {target!r}, which is not in the repository")
            continue
        inputs = {i.name: mc.DataType.Name(i.data_type) for i in model.input}
        outputs = {o.name: mc.DataType.Name(o.data_type) for o in model.output}
        for spec in interface.inputs:
            if inputs.get(spec.name) != spec.dtype:
                problems.append(f"{name}: sends {spec.name} {spec.dtype} to {target}, which takes "
                                f"{inputs.get(spec.name, 'no such input')}")
        for spec in interface.outputs:
            if outputs.get(spec.name) != spec.dtype:
                problems.append(f"{name}: reads {spec.name} {spec.dtype} from {target}, which gives "
                                f"{outputs.get(spec.name, 'no such output')}")
    return problems


def check_repository(path: Path) -> list[str]:
    configs, problems = load_repository(path)
    for name, config in configs.items():
        if config.platform == "ensemble":
            problems += check_ensemble(name, configs)
        if Param.COVER_MODEL in config.parameters or Param.RERANK_MODEL in config.parameters:
            problems += check_bls(name, configs)
        elif Param.RERANK_ENGINE in config.parameters:
            problems += check_bls(name, configs, engines_only=True)
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repository", type=Path)
    args = parser.parse_args()
    problems = check_repository(args.repository)
    for problem in problems:
        print(f"WIRING: {problem}")
    configs, _ = load_repository(args.repository)
    print(f"{args.repository}: {len(configs)} models, {len(problems)} wiring problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
