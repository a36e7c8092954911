"""Behaviour cloning in PyTorch, straight from an rlstore version, with no TensorFlow in the process.

    python examples/torch_bc.py --store ./store            # ingests the imitation CartPole expert if needed
    python examples/torch_bc.py --store ./store --dataset my_cartpole@3 --updates 5000 --seed 1

Trains an MLP policy (256x256) with cross-entropy on (observation, action) pairs read by
`rlstore.torch.TransitionDataset` through a 2-worker DataLoader, then evaluates it greedily on
gymnasium's CartPole-v1 and prints one JSON line: mean return, its spread, seeds and timings.
When the dataset is missing, the imitation project's expert rollouts (shared/external) are
ingested first by the `rlstore` CLI in a child process, which is where Beam and TF run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import torch
from torch.utils.data import DataLoader

from rlstore.store import Store
from rlstore.torch import TransitionDataset

EXPERT_FILE = "imitation_cartpole_expert.npz"


def ensure_dataset(store: Store, name: str) -> None:
    """Ingests the imitation CartPole expert as `name` unless the store already has it."""
    if store.versions(name.split("@")[0]):
        return
    from rlstore.datasets.external import external_file

    command = [sys.executable, "-m", "rlstore", "--store", str(store.root), "ingest", "--dataset", name.split("@")[0],
               "--format", "imitation", "--max-episode-steps", "500", str(external_file(EXPERT_FILE))]
    subprocess.run(command, check=True)


def policy_network(observation_size: int, actions: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(observation_size, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, actions))


def train(store: Store, ref: str, updates: int, batch_size: int, seed: int, workers: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    data = TransitionDataset(store, ref, batch_size=batch_size, seed=seed)
    policy = policy_network(4, 2)
    optimiser = torch.optim.Adam(policy.parameters(), lr=1e-3)
    done, epoch = 0, 0
    while done < updates:
        data.set_epoch(epoch)
        for batch in DataLoader(data, batch_size=None, num_workers=workers):
            loss = torch.nn.functional.cross_entropy(policy(batch["observation"]), batch["action"].long())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            done += 1
            if done == updates:
                break
        epoch += 1
    return policy


def evaluate(policy: torch.nn.Module, episodes: int, seed: int) -> list[float]:
    env = gym.make("CartPole-v1")
    returns = []
    with torch.no_grad():
        for index in range(episodes):
            observation, _ = env.reset(seed=seed + index)
            total, finished = 0.0, False
            while not finished:
                action = int(policy(torch.as_tensor(observation[None], dtype=torch.float32)).argmax())
                observation, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                finished = terminated or truncated
            returns.append(total)
    env.close()
    return returns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="store root")
    parser.add_argument("--dataset", default="cartpole_expert", help="NAME[@V] (default: cartpole_expert)")
    parser.add_argument("--updates", type=int, default=5000, help="gradient steps (default 5000)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0, help="seeds the network, the data order and the evaluation")
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (default 2)")
    args = parser.parse_args(argv)
    store = Store(args.store)
    ensure_dataset(store, args.dataset)
    started = time.perf_counter()
    policy = train(store, args.dataset, args.updates, args.batch_size, args.seed, args.workers)
    trained = time.perf_counter()
    returns = evaluate(policy, args.episodes, seed=1000 + args.seed)
    print(json.dumps({"dataset": str(store.resolve(args.dataset)), "seed": args.seed, "updates": args.updates,
                      "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
                      "min_return": float(np.min(returns)), "episodes": args.episodes,
                      "train_seconds": round(trained - started, 1),
                      "tensorflow_imported": any(m.startswith("tensorflow") for m in sys.modules)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
