"""Layers: each a `Layer(init, apply, name)` over a readable parameter dict.

Modules hold one family each; this package re-exports the public names.
"""

from funcnn.nn.attention import (
    attention_weights,
    causal_mask,
    dot_product_attention,
    init_kv_cache,
    key_padding_mask,
    multi_head_attention,
    repeat_kv,
    soft_cap,
    window_mask,
)
from funcnn.nn.batch_norm import batch_norm, group_norm, instance_norm
from funcnn.nn.conv import conv1d, conv2d, conv_transpose2d
from funcnn.nn.core import (
    Layer,
    activation,
    apply_with_state,
    flatten,
    initial_state,
    is_stateful,
    parallel,
    reshape,
    residual,
    serial,
)
from funcnn.nn.dense import FEED_FORWARD_ACTIVATIONS, dense, feed_forward, mlp, perceptron
from funcnn.nn.dropout import dropout, dropout2d
from funcnn.nn.embedding import (
    bag_of_words,
    embedding,
    positional_encoding,
    sinusoidal_positions,
    tied_logits,
)
from funcnn.nn.masking import lengths_to_mask
from funcnn.nn.norm import layer_norm, rms_norm
from funcnn.nn.pooling import (
    avg_pool1d,
    avg_pool2d,
    global_avg_pool,
    global_avg_pool2d,
    global_max_pool,
    global_max_pool2d,
    max_pool1d,
    max_pool2d,
)
from funcnn.nn.recurrent import (
    gru,
    gru_cell,
    lstm,
    lstm_cell,
    rnn,
    rnn_cell,
    scan_steps,
    zero_carry,
)
from funcnn.nn.rotary import apply_rotary, rotary_angles
from funcnn.nn.stack import repeat, scan_apply, stack_init, stack_layers, unstack_layers
from funcnn.nn.transformer import transformer_block, transformer_lm

__all__ = [
    "FEED_FORWARD_ACTIVATIONS",
    "Layer",
    "activation",
    "apply_rotary",
    "apply_with_state",
    "attention_weights",
    "avg_pool1d",
    "avg_pool2d",
    "bag_of_words",
    "batch_norm",
    "causal_mask",
    "conv1d",
    "conv2d",
    "conv_transpose2d",
    "dense",
    "dot_product_attention",
    "dropout",
    "dropout2d",
    "embedding",
    "feed_forward",
    "flatten",
    "global_avg_pool",
    "global_avg_pool2d",
    "global_max_pool",
    "global_max_pool2d",
    "group_norm",
    "gru",
    "gru_cell",
    "init_kv_cache",
    "initial_state",
    "instance_norm",
    "is_stateful",
    "key_padding_mask",
    "layer_norm",
    "lengths_to_mask",
    "lstm",
    "lstm_cell",
    "max_pool1d",
    "max_pool2d",
    "mlp",
    "multi_head_attention",
    "parallel",
    "perceptron",
    "positional_encoding",
    "repeat",
    "repeat_kv",
    "reshape",
    "residual",
    "rms_norm",
    "rnn",
    "rnn_cell",
    "rotary_angles",
    "scan_apply",
    "scan_steps",
    "serial",
    "sinusoidal_positions",
    "soft_cap",
    "stack_init",
    "stack_layers",
    "tied_logits",
    "transformer_block",
    "transformer_lm",
    "unstack_layers",
    "window_mask",
    "zero_carry",
]
