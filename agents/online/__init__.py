"""Online runs (`rlstore run AGENT`): a replay server, a learner and K actors, one process each.

    replay   a Reverb server with the agent's tables (e.g. demonstrations + the agent's replay),
             at --replay-address
    learner  trains from the replay tables; hosts a one-table Reverb server ("variables", see
             `rlstore.agents.online.variables`) from which actors pull weights, at --learner-address;
             writes checkpoints and logs/train.csv into the run directory
    actor i  plays the environment with the latest weights; its adder inserts every finished
             episode into the replay tables and, with --write-back NAME, appends it to the
             store dataset NAME (rlstore.writeback.WriteBack: a version per commit); actor 0
             also evaluates the greedy policy now and then (logs/eval.csv: env steps vs return)

Everything talks gRPC, so `--role replay|learner|actor` runs one part (on any host, with the
others' addresses); `--role all` (the default) starts every part as a child of `rlstore run`
on loopback and supervises them (`rlstore.agents.online.processes.ProcessGroup`): Ctrl-C, or any part
failing, stops every part cleanly (actors commit what they wrote, the learner checkpoints).
The run directory has the layout of a `train` run (run.json, checkpoints/, logs/), so
`rlstore eval` and `rlstore export` work on it unchanged.

Modules: `processes` (children and signals), `variables` (weights to actors), `context`
(what every part knows about the run), `replay`, `learning`, `acting` (the three roles'
loops, shared by every agent), `run` (the run manifest, the supervisor; what the CLI calls),
`main` (a child's entry point), `resuming` (what `--resume` continues from, and the checks that
it is the same run).

The plug-in shape: Acme's builder
---------------------------------
An agent opts in through `rlstore.agents.registry.AgentEntry.online`: "module:attribute" of a callable
`factory(context: rlstore.agents.online.context.RunContext) -> OnlineBuilder`, called once in every
process of the run. `RunContext` carries the store, the environment spec, the demonstration
version (exact "NAME@V", or None), the agent's config, the seed, the specs (from the
environment, checked against the demonstrations), the run directory and the actor count.
As in Acme, the builder makes the replay tables, the adder and the actor, and the adder is the
actor's single write path:

    class OnlineBuilder(Protocol):
        # replay process
        def make_replay_tables(self) -> list[reverb.Table]: ...
            # the tables to serve (rlstore.replay.tables.make_table helps)
        def fill_replay(self, address: str) -> None: ...
            # called once the server is up, e.g. to bulk-load the demonstrations
            # (rlstore.replay.load_version)
        # learner process
        def make_learner(self, replay_address: str) -> OnlineLearner: ...
        # actor processes
        def make_adder(self, replay_address: str, writer: WriteBack | None) -> rlstore.writeback.adder.Adder: ...
            # Adder(ReplayInserter(replay_address, layout, into=...), writer): each step recorded
            # once; each finished episode's rows into the agent's tables, and (with --write-back)
            # the episode into the store, the step's extras as step metadata
        def make_actor(self, index: int, adder: Adder) -> OnlineActor: ...

    class OnlineLearner(Protocol):
        steps: tf.Variable                          # update counter (int64), checkpointed
        def variables(self) -> Sequence[tf.Variable]: ...      # what actors act with, in order
        def checkpoint_objects(self) -> Mapping[str, Any]: ... # must hold "network" and "steps",
            # "network" being what the AgentBuilder's make_networks builds (so eval/export work)
        def ready(self) -> bool: ...               # may actors act with these weights yet?
            # (DQfD: not before pre-training ends); weights are published only once True
        def run(self, num_updates: int) -> dict[str, float]: ...
            # at most num_updates updates; FEWER (even none, returning {}) when the replay's
            # rate limiter has nothing to give for a while, so the loop can notice a stop
            # request; returns the mean metrics of the updates done

    class OnlineActor(Protocol):                   # Acme's Actor
        variables: Sequence[tf.Variable]           # same order as the learner's variables()
        def select_action(self, timestep: dm_env.TimeStep) -> Any: ...  # behaviour policy
        def observe_first(self, timestep: dm_env.TimeStep) -> None: ...
        def observe(self, action: Any, next_timestep: dm_env.TimeStep) -> None: ...
            # both to the adder, with the extras the action was chosen with (R2D3: the LSTM
            # state, so its sequences start from the stored state, in Reverb and in the store)
        def greedy_action(self, timestep: dm_env.TimeStep) -> Any: ...  # evaluation policy
            # recurrent actors reset their state on timestep.first(), each policy its own

The shared loops do the rest: variable serving and fetching (every `variable_update_period`
actor steps if the config has that field, else 100), the episode loop, replay inserts,
write-back, evaluation, train/eval logs, checkpoints, the run manifest and clean shutdown.
"""
