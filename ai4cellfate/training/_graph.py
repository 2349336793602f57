"""Running a small functional network layer by layer, without Keras' per-call
machinery (used on PyTorch).

On PyTorch a Keras functional model runs eagerly through
``Functional._run_through_graph`` and each layer's ``Layer.__call__``
(argument binding, call context, autocasting, masks, nested-structure
flattening): for the preprint's networks that was about a quarter of a
training step's time on a 2-core CPU. :func:`forward` computes the same thing
by calling each layer's ``call`` directly, in the order Keras would.
"""

from __future__ import annotations

import inspect
import weakref

import keras

__all__ = ["forward"]

_PLANS = weakref.WeakKeyDictionary()
_KERNELS = weakref.WeakKeyDictionary()


def _input_ids(node):
    """``id`` of a node's one input tensor, or a list of ids for one list of
    tensors (``Add``), when its other arguments are None or ``training``;
    else None (``forward`` then fills its arguments in the general way)."""
    args, kwargs = node.arguments.args, node.arguments.kwargs
    if len(args) != 1 or any(v is not None for k, v in kwargs.items() if k != "training"):
        return None
    arg = args[0]
    if isinstance(arg, keras.KerasTensor):
        return id(arg)
    if isinstance(arg, (list, tuple)) and arg and all(
            isinstance(a, keras.KerasTensor) for a in arg):
        return [id(a) for a in arg]
    return None


def _plan(net):
    """``[(node, layer, takes_training, output_id, input_ids), ...]`` in
    execution order, or None when ``net`` is not a graph of plain
    single-output layers."""
    if net in _PLANS:
        return _PLANS[net]
    plan = None
    nodes_by_depth = getattr(net, "_nodes_by_depth", None)
    if nodes_by_depth is not None and len(net.inputs) == 1 and len(net.outputs) == 1:
        plan = []
        for depth in sorted(nodes_by_depth, reverse=True):
            for node in nodes_by_depth[depth]:
                layer = node.operation
                if not layer or node.is_input:
                    continue
                if isinstance(layer, keras.Model) or len(node.outputs) != 1:
                    # a nested model or a layer with several outputs
                    plan = None
                    break
                params = inspect.signature(layer.call).parameters
                plan.append((node, layer, "training" in params, id(node.outputs[0]),
                             _input_ids(node)))
            if plan is None:
                break
    _PLANS[net] = plan
    return plan


def _kernels(net, plan, kernel_for):
    """``[f or None, ...]`` per plan entry: ``kernel_for(layer)``, cached."""
    cache = _KERNELS.setdefault(net, {})
    if kernel_for not in cache:
        cache[kernel_for] = [kernel_for(entry[1]) for entry in plan]
    return cache[kernel_for]


def forward(net, x, training, kernel_for=None):
    """``net(x, training=training)`` for a functional model of single-input,
    single-output layers, calling each layer's ``call`` directly.

    Parameters
    ----------
    net : keras.Model
        A built functional model with one input and one output. Anything else
        (a subclassed model, nested models) is called the ordinary way.
    x : tensor
        The input, already a backend tensor of the model's dtype.
    training : bool
        Training mode (noise, dropout and batch statistics on).
    kernel_for : callable, optional
        ``kernel_for(layer)`` gives a function ``f(layer, inputs, training)``
        computing ``layer.call(inputs, training=training)`` another way, or
        None to call the layer's ``call`` (PyTorch:
        ``_torch_layers.kernel_for``). Asked once per layer and cached.

    Returns
    -------
    out : tensor
        What ``net(x, training=training)`` returns.
    """
    plan = _plan(net)
    if plan is None:
        return net(x, training=training)
    kernels = [None] * len(plan) if kernel_for is None else _kernels(net, plan, kernel_for)
    return run(net, plan, kernels, x, training)


def run(net, plan, kernels, x, training):
    """:func:`forward` with the plan (``_plan(net)``, not None) and one
    kernel (or None) per entry given, touching no cache: what a function
    compiled with ``torch.compile`` calls, where reading a module-level
    cache would make its guards depend on the cache's size."""
    values = {id(net.inputs[0]): x}
    training = bool(training)
    for (node, layer, takes_training, out_id, in_ids), kernel in zip(plan, kernels):
        if in_ids is None:
            args, kwargs = node.arguments.fill_in(values)
        else:
            arg = values[in_ids] if isinstance(in_ids, int) else [values[i] for i in in_ids]
            args, kwargs = (arg,), {}
        if (kernel is not None and len(args) == 1
                and all(v is None for k, v in kwargs.items() if k != "training")):
            values[out_id] = kernel(layer, args[0], training)
            continue
        if takes_training:
            kwargs["training"] = training
        values[out_id] = layer.call(*args, **kwargs)
    return values[id(net.outputs[0])]
