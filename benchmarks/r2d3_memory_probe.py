"""R2D3 memory probe: does the recurrent Q-network learn to carry MiniGrid-Memory's cue to the junction?

An offline diagnostic for issue 13, much cheaper than an online run (no Reverb, no processes):
it records expert episodes in-process (the scripted expert, cues balanced, env seeds from 0),
cuts them into the sequences the replay tables hold (`episode_sequences`), trains the R2D3
networks on them with the R2D3 loss (`--loss r2d3`: TD + the configured supervised term on
every step, all demonstrations) or plain cross-entropy on the demonstrated actions
(`--loss bc`), and reports at every evaluation point:
  junction_accuracy  the greedy action's agreement with the demonstrated turn at the junction
                     (the step two before the end: left up, right down) on the training episodes;
                     without memory it cannot beat 0.5
  held_out_junction  the same on `--held-out` further expert episodes never trained on (the
                     recording's continuation): fitting the training turns by memorising each
                     episode leaves this at chance, learning the rule lifts it
  other_accuracy     the same on every other step
  cue_in_state       with `--held-out`: accuracy of a linear read-out (ridge regression, fitted
                     on the training episodes, scored on the held-out ones) of the start room's
                     object from the LSTM state (h, c) at the junction: whether the memory is
                     there at all, whatever the head makes of it (0.5: not there)
  success            greedy success on `--eval-episodes` fresh episodes from env seed 5,000
                     (the tuning seeds, never the benchmark's evaluation seeds)

    python benchmarks/r2d3_memory_probe.py --demos 200 --loss bc --updates 4000 --head-sizes 64
    python benchmarks/r2d3_memory_probe.py --demos 200 --held-out 200 --loss bc --updates 10000
    python benchmarks/r2d3_memory_probe.py --quick    # 20 demos, 200 updates: a smoke run

The config is the `memory` preset's, then every R2D3Config flag given (`--lstm-size 128`, as
`rlstore run r2d3` takes them). Prints one JSON line on stdout; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import log  # noqa: E402

from rlstore.quiet import silence  # noqa: E402

silence()  # before TensorFlow

ENV = "gym:MiniGrid-MemoryS9-v0"  # the default --env
EVAL_SEED = 5_000
CHANCE_SEED = 1_000  # env seeds of the `--chance` episodes
LEFT, RIGHT = 0, 1
KEY = 5  # MiniGrid's object code of a key
RIDGE = 1e-2  # the cue read-out's regularisation


def record(env_spec: str, episodes: int, one_order: bool = False, seed: int = 0,
           random_end: bool = False) -> list[dict]:
    """Expert episodes as RLDS step dicts (SAR alignment), cues balanced, env seeds from `seed`; with
    `one_order` only those whose upper end holds the key (the cue alone then decides the turn);
    with `random_end` the expert looks at the cue, then walks to either end with even odds (what
    an agent that has learned the route but not the memory does: rewarded and unrewarded turns)."""
    from rlstore.envs import make_environment
    from rlstore.envs.cues import BalancedCues, hidden_cue
    from rlstore.envs.minigrid_experts import MemoryExpert

    env = BalancedCues(make_environment(env_spec, seed=seed))
    expert, game, coin = MemoryExpert(env), env.gym_env.unwrapped, np.random.default_rng(seed)
    recorded = []
    while len(recorded) < episodes:
        timestep, steps = env.reset(), []
        if one_order and hidden_cue(env.environment) not in (("key", "up"), ("ball", "down")):
            continue
        wrong = random_end and coin.random() < 0.5
        while not timestep.last():
            if wrong:  # the expert heads for what it believes is the matching end
                game.success_pos, game.failure_pos = game.failure_pos, game.success_pos
            action = expert(timestep)
            if wrong:
                game.success_pos, game.failure_pos = game.failure_pos, game.success_pos
            following = env.step(action)
            steps.append((timestep.observation, action, following.reward, following.discount))
            timestep = following
        steps.append((timestep.observation, np.int64(0), 0.0, 0.0))
        count = len(steps)
        recorded.append({"observation": {"image": np.stack([s[0]["image"] for s in steps]),
                                         "direction": np.array([s[0]["direction"] for s in steps], np.int64)},
                         "action": np.array([s[1] for s in steps], np.int64),
                         "reward": np.array([s[2] for s in steps], np.float32),
                         "discount": np.array([s[3] for s in steps], np.float32),
                         "is_first": np.arange(count) == 0, "is_last": np.arange(count) == count - 1})
    return recorded


def positions(data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(each window's final-observation index [windows], the junction-turn step and the acting steps
    [windows, time] masks); only windows that hold their episode's end have a junction."""
    end = data["mask"].sum(axis=1).astype(int) - 1
    time = np.arange(data["mask"].shape[1])[None, :]
    junction = (time == (end - 2)[:, None]) & (data["discount"][np.arange(len(end)), end - 1] == 0)[:, None]
    return end, junction, time < end[:, None]


def junction_states(network, data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(the LSTM state (h, c) concatenated at each junction turn [junctions, 2·units], the start room's
    object there: 1 a key, 0 a ball). The cue follows from the demonstrated turn and the view at the
    junction, where the agent faces right: column 1 of the view's last row is the upper end."""
    import tensorflow as tf

    from rlstore.agents.r2d3.networks import previous_actions_and_rewards

    actions, rewards = previous_actions_and_rewards(data["action"], data["reward"], data["is_first"])
    state, states = network.initial_state(len(data["mask"])), []
    for t in range(data["mask"].shape[1]):
        observation = tf.nest.map_structure(lambda x: x[:, t], data["observation"])
        state = network(observation, actions[:, t], rewards[:, t], state)[1]
        states.append(tf.concat(state, axis=-1).numpy())
    rows, steps = np.nonzero(positions(data)[1])
    turned_up = data["action"][rows, steps] == LEFT
    upper_is_key = data["observation"]["image"][rows, steps, 1, 6, 0] == KEY
    return np.stack(states, axis=1)[rows, steps], (turned_up == upper_is_key).astype(np.float64)


def cue_readout(network, train: dict[str, np.ndarray], held: dict[str, np.ndarray]) -> float:
    """Held-out accuracy of a ridge-regression read-out of the cue from the junction state."""
    (x_train, y_train), (x_held, y_held) = junction_states(network, train), junction_states(network, held)
    with_bias = lambda x: np.concatenate([x, np.ones((len(x), 1))], axis=1)  # noqa: E731
    x_train, x_held = with_bias(x_train), with_bias(x_held)
    weights = np.linalg.solve(x_train.T @ x_train + RIDGE * np.eye(x_train.shape[1]), x_train.T @ (2 * y_train - 1))
    return round(float(((x_held @ weights > 0) == (y_held > 0)).mean()), 3)


def evaluate(network, env_spec: str, episodes: int) -> float:
    """Greedy success rate on fresh episodes from the tuning seeds."""
    import tensorflow as tf

    from rlstore.envs import make_environment

    env = make_environment(env_spec, seed=EVAL_SEED)
    step = tf.function(network.__call__)
    successes = 0
    for _ in range(episodes):
        timestep, state, action, reward = env.reset(), network.initial_state(1), 0, 0.0
        while not timestep.last():
            observation = {"image": timestep.observation["image"][None],
                           "direction": np.asarray([timestep.observation["direction"]], np.int64)}
            q_values, state = step(observation, tf.constant([action], tf.int32), tf.constant([reward]), state)
            action = int(tf.argmax(q_values[0]))
            timestep = env.step(np.int64(action))
            reward = float(timestep.reward)
        successes += timestep.reward > 0
    return successes / episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 demos, 200 updates, 10 evaluation episodes")
    parser.add_argument("--env", default=ENV, help=f"a MiniGrid memory task (default: {ENV})")
    parser.add_argument("--demos", type=int, default=20, help="expert episodes to train on (default: 20)")
    parser.add_argument("--loss", choices=("r2d3", "bc"), default="r2d3")
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=40)
    parser.add_argument("--held-out", type=int, default=0,
                        help="further expert episodes to score the junction turn and the cue read-out on, never "
                             "trained on (default: 0)")
    parser.add_argument("--chance", type=int, default=0,
                        help="with --loss r2d3: also this many episodes in which the expert looks at the cue and "
                             "then picks an end at random (env seeds from 1,000; not demonstrations: TD only), "
                             "mixed in at the config's demo ratio after its pre-training updates, as an online "
                             "run's own episodes are (default: 0)")
    parser.add_argument("--seed", type=int, default=0, help="weights and batch order")
    parser.add_argument("--one-order", action="store_true",
                        help="a control: train only on episodes whose upper end holds the key, so the cue alone "
                             "decides the turn (memory without the XOR of cue and order)")
    from rlstore.agents.config_args import add_config_arguments, given_overrides
    from rlstore.agents.r2d3.config import R2D3Config

    add_config_arguments(parser, R2D3Config)
    args = parser.parse_args()
    if args.chance and args.loss != "r2d3":
        parser.error("--chance needs --loss r2d3 (its episodes carry rewards, not demonstrations)")
    if args.quick:
        args.demos, args.updates, args.eval_every, args.eval_episodes, args.held_out = 20, 200, 200, 10, 20
    started = time.perf_counter()

    import sonnet as snt
    import tensorflow as tf

    from rlstore.agents.presets import overrides_of
    from rlstore.agents.r2d3.builder import R2D3Builder
    from rlstore.agents.r2d3.losses import r2d3_loss
    from rlstore.agents.r2d3.networks import previous_actions_and_rewards
    from rlstore.agents.specs import ActionSpec, ArraySpec, DataSpecs
    from rlstore.reading.transforms import episode_sequences
    config = R2D3Config(**{**overrides_of("memory"), **given_overrides(args, R2D3Config)})
    specs = DataSpecs({"image": ArraySpec((7, 7, 3), "uint8", True), "direction": ArraySpec((), "int64")},
                      ActionSpec((), "int64", 7))

    log(f"recording {args.demos} + {args.held_out} held-out expert episodes of {args.env}")
    episodes = record(args.env, args.demos + args.held_out, args.one_order)

    def sequences(chosen: list[dict], is_demo: bool = True) -> dict[str, np.ndarray]:
        windows = [episode_sequences(tf.nest.map_structure(tf.constant, episode), config.sequence_length,
                                     config.period, config.burn_in, is_demo=is_demo) for episode in chosen]
        return tf.nest.map_structure(lambda *parts: tf.concat(parts, 0).numpy(), *windows)

    data, held = sequences(episodes[:args.demos]), sequences(episodes[args.demos:]) if args.held_out else None
    end, junction, acting = positions(data)
    chance = sequences(record(args.env, args.chance, seed=CHANCE_SEED, random_end=True), is_demo=False) if args.chance else None
    demo_rows = round(config.demo_ratio * config.batch_size)

    tf.random.set_seed(args.seed)
    networks = R2D3Builder().make_networks(specs, config)
    optimizer = snt.optimizers.Adam(config.learning_rate, epsilon=config.adam_epsilon)

    def greedy(batch):
        inputs = previous_actions_and_rewards(batch["action"], batch["reward"], batch["is_first"])
        state = networks.online.initial_state(tf.shape(batch["mask"])[0])
        return networks.online.unroll(batch["observation"], *inputs, state)[0]

    @tf.function
    def update(batch):
        with tf.GradientTape() as tape:
            if args.loss == "r2d3":
                loss = r2d3_loss(networks, batch, config).loss
            else:
                valid = tf.cast(acting_of(batch), tf.float32)
                cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
                    tf.cast(batch["action"], tf.int32), greedy(batch))
                loss = tf.reduce_sum(cross_entropy * valid) / tf.reduce_sum(valid)
        variables = networks.online.trainable_variables
        optimizer.apply(tape.gradient(loss, variables), variables)

    def acting_of(batch):
        positions = tf.range(tf.shape(batch["mask"])[1])[None, :]
        return positions < tf.cast(tf.reduce_sum(batch["mask"], axis=1), tf.int32)[:, None] - 1

    rng = np.random.default_rng(args.seed)
    points = []
    for step in range(1, args.updates + 1):
        if chance is None or step <= config.pretrain_steps:
            rows = rng.integers(len(end), size=config.batch_size)
            update(tf.nest.map_structure(lambda x: x[rows], data))
        else:
            demo, other = rng.integers(len(end), size=demo_rows), rng.integers(len(chance["mask"]),
                                                                                size=config.batch_size - demo_rows)
            update(tf.nest.map_structure(lambda x, y: np.concatenate([x[demo], y[other]]), data, chance))
        if step % config.target_update_period == 0:
            networks.update_target()
        if step % args.eval_every == 0 or step == args.updates:
            correct = tf.argmax(greedy(data), axis=-1).numpy() == data["action"]
            point = {"updates": step, "junction_accuracy": round(float(correct[junction].mean()), 3),
                     "other_accuracy": round(float(correct[acting & ~junction].mean()), 3)}
            if held is not None:
                held_junction = positions(held)[1]
                point["held_out_junction"] = round(float(
                    (tf.argmax(greedy(held), axis=-1).numpy() == held["action"])[held_junction].mean()), 3)
                point["cue_in_state"] = cue_readout(networks.online, data, held)
            point["success"] = evaluate(networks.online, args.env, args.eval_episodes)
            log(json.dumps(point))
            points.append(point)
    print(json.dumps({
        "benchmark": "r2d3_memory_probe", "quick": args.quick, "env": args.env, "demos": args.demos,
        "demo_env_seeds": f"0.. (balanced cues), {len(end)} windows", "eval_env_seed": EVAL_SEED,
        "held_out": args.held_out, "eval_episodes": args.eval_episodes, "one_order": args.one_order, "loss": args.loss,
        "chance": args.chance, "chance_env_seed": CHANCE_SEED if args.chance else None,
        "config": dataclasses.asdict(config),
        "points": points, "load_average": os.getloadavg(), "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
