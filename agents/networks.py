"""Networks shared by the agents, in Sonnet 2, built from a dataset's specs.

A dataset's observation can be one array or a dict of them (images, vectors, integers), so
observations go through an `ObservationEncoder` that encodes each key on its own (a small
conv torso for images, a flatten for everything else) and concatenates the results; an MLP
torso and a head follow. Encoders take observations in their stored dtype (uint8 images,
integer fields) and cast inside the graph, so an exported policy takes raw observations.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import sonnet as snt
import tensorflow as tf

from rlstore.agents.specs import ActionSpec, ArraySpec, flat_observation

LOG_STD_RANGE = (-5.0, 2.0)
NORMALIZED_CLIP = 10.0
MIN_STD = 1e-6


class ConvTorso(snt.Module):
    """A small conv stack for HxWxC images: two strided 3x3 convs.

    uint8 images are camera pixels, scaled to [0, 1], unless `codes` > 0: then every channel holds
    symbols below `codes` and is one-hot encoded (C·codes input planes). MiniGrid's 7x7x3 view is
    such a grid (object, colour and state codes, all below 11): scaled as pixels, its key (5) and
    ball (6) differ by 0.004 in one cell, and a recurrent Q-network trained on memory-task
    demonstrations sat at the same wrong junction choices for 2,000 updates (image scale 1/255,
    1/10 or 1 alike); one-hot, it fitted them in 1,200."""

    def __init__(self, channels: Sequence[int] = (32, 64), codes: int = 0, name: str = "conv_torso"):
        super().__init__(name=name)
        self._convs = [snt.Conv2D(c, kernel_shape=3, stride=2, name=f"conv_{i}") for i, c in enumerate(channels)]
        self._codes = codes

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        x = tf.cast(images, tf.float32)
        if images.dtype == tf.uint8 and self._codes:
            x = tf.one_hot(tf.cast(images, tf.int32), self._codes)
            x = tf.reshape(x, tf.concat([tf.shape(images)[:-1], [images.shape[-1] * self._codes]], 0))
        elif images.dtype == tf.uint8:
            x = x / 255.0
        for conv in self._convs:
            x = tf.nn.relu(conv(x))
        return snt.Flatten()(x)


class ObservationEncoder(snt.Module):
    """Encodes each observation key separately (images by a conv torso) and concatenates.

    With `normalize`, every non-image key is standardised, `(x - mean) / std` clipped to
    +-NORMALIZED_CLIP, with per-feature statistics held in non-trainable variables: they start
    as 0 and 1, are set once from the dataset (`set_statistics`), and travel with checkpoints
    and exported SavedModels. `image_codes` > 0 one-hot encodes uint8 images (see ConvTorso).
    """

    def __init__(self, observation_specs: Mapping[str, ArraySpec], normalize: bool = False,
                 image_codes: int = 0, name: str = "observation_encoder"):
        super().__init__(name=name)
        self._keys = sorted(observation_specs)
        # Lists (not dicts keyed by path) so checkpoint names never contain '/'.
        self._torsos = [ConvTorso(codes=image_codes, name=f"conv_torso_{i}") if observation_specs[key].image else None
                        for i, key in enumerate(self._keys)]
        self._means, self._stds = [], []
        for i, key in enumerate(self._keys):
            shape = observation_specs[key].shape
            use = normalize and not observation_specs[key].image
            self._means.append(tf.Variable(tf.zeros(shape), trainable=False, name=f"mean_{i}") if use else None)
            self._stds.append(tf.Variable(tf.ones(shape), trainable=False, name=f"std_{i}") if use else None)

    def set_statistics(self, mean: Mapping[str, np.ndarray], std: Mapping[str, np.ndarray]) -> None:
        """Sets the standardisation of each normalised key; features with (almost) no spread keep std 1."""
        for key, mean_var, std_var in zip(self._keys, self._means, self._stds):
            if mean_var is not None:
                mean_var.assign(np.asarray(mean[key], np.float32))
                std_var.assign(np.where(np.asarray(std[key]) > MIN_STD, std[key], 1.0).astype(np.float32))

    def __call__(self, observation: Any) -> tf.Tensor:
        flat = flat_observation(observation)
        parts = []
        for key, torso, mean, std in zip(self._keys, self._torsos, self._means, self._stds):
            value = flat[key]
            if torso is not None:
                parts.append(torso(value))
                continue
            value = tf.cast(value, tf.float32)
            if mean is not None:
                value = tf.clip_by_value((value - mean) / std, -NORMALIZED_CLIP, NORMALIZED_CLIP)
            parts.append(snt.Flatten()(value))
        return tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0]


class PolicyNetwork(snt.Module):
    """Encoder → MLP torso → action head.

    Discrete actions get `{"logits": [B, num_values]}`. Continuous actions get
    `{"mean": [B, *shape]}`, plus `"log_std"` (clipped to LOG_STD_RANGE) when `gaussian`.
    """

    def __init__(self, observation_specs: Mapping[str, ArraySpec], action_spec: ActionSpec,
                 hidden_sizes: Sequence[int], gaussian: bool = False, normalize: bool = False,
                 name: str = "policy_network"):
        super().__init__(name=name)
        self._action_spec = action_spec
        self._gaussian = gaussian and not action_spec.discrete
        self.encoder = ObservationEncoder(observation_specs, normalize)
        self._torso = snt.nets.MLP(list(hidden_sizes), activate_final=True, name="torso")
        outputs = action_spec.num_values if action_spec.discrete else action_spec.size
        self._head = snt.Linear(outputs, name="head")
        self._log_std = snt.Linear(action_spec.size, name="log_std") if self._gaussian else None

    def __call__(self, observation: Any) -> dict[str, tf.Tensor]:
        features = self._torso(self.encoder(observation))
        if self._action_spec.discrete:
            return {"logits": self._head(features)}
        shape = (-1, *self._action_spec.shape)
        outputs = {"mean": tf.reshape(self._head(features), shape)}
        if self._log_std is not None:
            outputs["log_std"] = tf.reshape(tf.clip_by_value(self._log_std(features), *LOG_STD_RANGE), shape)
        return outputs


class QHead(snt.Module):
    """Q-values [B, num_actions] from features: a linear layer, or the dueling head
    V(s) + A(s,a) − mean_a A(s,a) (Wang et al. 2016) that DQfD and R2D2 use. Dueling learns
    the state's value from every action's update, which matters when demonstrations show
    only one action per state. With `hidden_sizes` each stream is an MLP (R2D2's head has a
    512-unit layer per stream): a recurrent network's Q-values can then depend on what it
    remembers and what it sees together (MiniGrid memory: the cue seen long ago AND which end
    holds its twin), which a linear read-out of the LSTM's output can only do through its gates."""

    def __init__(self, num_actions: int, dueling: bool = True, name: str = "q_head",
                 hidden_sizes: Sequence[int] = ()):
        super().__init__(name=name)
        self._advantage = _stream(hidden_sizes, num_actions, "advantage" if dueling else "q_values")
        self._value = _stream(hidden_sizes, 1, "value") if dueling else None

    def __call__(self, features: tf.Tensor) -> tf.Tensor:
        advantage = self._advantage(features)
        if self._value is None:
            return advantage
        return self._value(features) + advantage - tf.reduce_mean(advantage, axis=-1, keepdims=True)


def _stream(hidden_sizes: Sequence[int], outputs: int, name: str) -> snt.Module:
    """A linear layer (named as before hidden layers existed, so older checkpoints restore), or an MLP."""
    if not hidden_sizes:
        return snt.Linear(outputs, name=name)
    return snt.nets.MLP([*hidden_sizes, outputs], name=name)


class OnlineAndTarget(snt.Module):
    """A learned network and its periodically synced copy, as one module so a checkpoint's
    "network" holds both: a resumed run restores the target exactly instead of re-copying it
    from the online network mid-period."""

    def __init__(self, online: snt.Module, target: snt.Module, name: str = "networks"):
        super().__init__(name=name)
        self.online = online
        self.target = target

    def update_target(self) -> None:
        """Copies every online variable (the standardisation statistics too) into the target."""
        for source, destination in zip(self.online.variables, self.target.variables):
            destination.assign(source)
