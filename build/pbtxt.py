"""Triton `ModelConfig` protobufs built from tensor specs and a profile: Python models, ensembles, batching."""

from __future__ import annotations

from typing import Any

from tritonclient.grpc import model_config_pb2 as mc

from build.profile import Profile
from ensemble.tensors import Interface

EnsembleStep = tuple[str, Interface, dict[str, str], dict[str, str]]
"""(model, its interface, input renames, output renames)."""


def io(interface: Interface, *, ragged: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {
        "input": [mc.ModelInput(name=s.name, data_type=mc.DataType.Value(s.dtype), dims=list(s.dims),
                                optional=s.optional, allow_ragged_batch=s.name in ragged) for s in interface.inputs],
        "output": [mc.ModelOutput(name=s.name, data_type=mc.DataType.Value(s.dtype), dims=list(s.dims))
                   for s in interface.outputs],
    }


def params(values: dict[str, str]) -> dict[str, mc.ModelParameter]:
    return {k: mc.ModelParameter(string_value=str(v)) for k, v in values.items()}


def batching(profile: Profile, delay_us: int) -> mc.ModelDynamicBatching:
    """Dynamic batching; with `[serving] max_queue_size` > 0 also a bounded queue (overload answers UNAVAILABLE).

    The shipped profiles set no bound (0): Triton's batcher then prefetches. A bound, or any timeout in the queue
    policy, turns prefetching off (triton core src/scheduler_utils.cc, PriorityQueue: `support_prefetching_`
    needs max_queue_size 0, no timeout override, no default timeout). Without prefetching, a new request wakes
    the batcher only if an instance thread is already idle in the rate limiter (src/rate_limiter.cc,
    PayloadSlotAvailable: `WaitingConsumerCount(...) > 0`, called from DynamicBatchScheduler::Enqueue with
    force_non_blocking), and an instance that goes idle wakes nobody. A request that arrives while the only
    instance is finishing the execution whose response already reached the client, the client's next request
    say, then waits out the batcher's idle sleep, `default_wait_microseconds = 500 * 1000` in
    src/dynamic_batch_scheduler.cc: the ~500 ms stall on 5-25% of back-to-back requests. With prefetching the
    wake test is the payload queue's length (< 2 per instance), which does not race with the instance thread."""
    bound = profile.get("serving", "max_queue_size")
    if not bound:
        return mc.ModelDynamicBatching(max_queue_delay_microseconds=delay_us)
    return mc.ModelDynamicBatching(
        max_queue_delay_microseconds=delay_us,
        default_queue_policy=mc.ModelQueuePolicy(max_queue_size=bound, timeout_action=mc.ModelQueuePolicy.REJECT,
                                                 allow_timeout_override=True))


def python_model(name: str, interface: Interface, profile: Profile, values: dict[str, str], *, instances: int,
                 delay_us: int, ragged: frozenset[str] = frozenset()) -> mc.ModelConfig:
    return mc.ModelConfig(
        name=name, backend="python", max_batch_size=profile.get("serving", "max_batch_size"),
        dynamic_batching=batching(profile, delay_us),
        instance_group=[mc.ModelInstanceGroup(count=instances, kind=mc.ModelInstanceGroup.KIND_CPU)],
        parameters=params(values), **io(interface, ragged=ragged))


def ensemble(name: str, interface: Interface, profile: Profile, steps: list[EnsembleStep], *,
             max_batch_size: int | None = None) -> mc.ModelConfig:
    """With no output renames a step's every output keeps its name; with renames only the renamed outputs are
    requested (Triton refuses unused ensemble tensors). `max_batch_size`: the serving profile's unless given."""
    scheduling = mc.ModelEnsembling()
    for model, step_io, inputs, outputs in steps:
        scheduling.step.append(mc.ModelEnsembling.Step(
            model_name=model, model_version=-1,
            input_map={s.name: inputs.get(s.name, s.name) for s in step_io.inputs
                       if not s.optional or not inputs or s.name in inputs},
            output_map={s.name: outputs.get(s.name, s.name) for s in step_io.outputs
                        if not outputs or s.name in outputs}))
    batch = profile.get("serving", "max_batch_size") if max_batch_size is None else max_batch_size
    return mc.ModelConfig(name=name, platform="ensemble", max_batch_size=batch,
                          ensemble_scheduling=scheduling, **io(interface))


def engine_steps(pre: tuple[str, Interface], slot: tuple[str, Interface], post: tuple[str, Interface],
                 ensemble_inputs: set[str]) -> list[EnsembleStep]:
    """pre -> slot -> post. Tensors between steps get a leading underscore so they never clash with the
    ensemble's own inputs and outputs; the post step also reads what the pre step passes it."""
    (pre_name, pre_io), (slot_name, slot_io), (post_name, post_io) = pre, slot, post
    internal = {s.name: f"_{s.name}" for s in pre_io.outputs} | {s.name: f"_{s.name}" for s in slot_io.outputs}
    consumed = {s.name for s in slot_io.inputs} | {s.name for s in post_io.inputs}
    # An optional slot input no step produces (the soft-token tensors, for every task but the post-rank) is left
    # unwired: Triton sends the slot nothing for it.
    slot_inputs = {s.name: (s.name if s.name in ensemble_inputs else internal[s.name]) for s in slot_io.inputs
                   if s.name in ensemble_inputs or s.name in internal}
    post_inputs = {s.name: (s.name if s.name in ensemble_inputs else internal[s.name]) for s in post_io.inputs}
    # Pre outputs no later step reads (say, guided decoding for a PyTorch slot) are simply not requested.
    return [(pre_name, pre_io, {}, {s.name: internal[s.name] for s in pre_io.outputs if s.name in consumed}),
            (slot_name, slot_io, slot_inputs, {s.name: internal[s.name] for s in slot_io.outputs}),
            (post_name, post_io, post_inputs, {})]
