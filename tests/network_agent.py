"""``python -m tests.network_agent serve ...``: the real agent for the network
tests, run the way they need it.

- ``$HOSTAGENT_TEST_NETNS``: the agent runs inside that namespace (``ip netns
  exec``, which then execs the agent: same pid, so ``kill -9`` hits it), and
  manages that namespace's interfaces, never the host's.
- ``$HOSTAGENT_TEST_FAKE_NETWORK=1``: the network feature is built on the
  in-test engine (tests/network_fake.py) instead of the kernel's.
- ``$HOSTAGENT_TEST_STEP_DELAY`` (seconds): the real engine pauses before
  each step (its ``step_hook``), so a test can kill the agent mid-apply;
  ``$HOSTAGENT_TEST_FAIL_STEP`` (n): step n (from 0) fails, after the ones
  before it were made.
"""
import os
import sys
import time

if __name__ == "__main__":
    netns = os.environ.pop("HOSTAGENT_TEST_NETNS", "")
    if netns:
        os.execvp("ip", ["ip", "netns", "exec", netns, sys.executable, "-m", "tests.network_agent",
                         *sys.argv[1:]])
    from agent import cli, daemon, features
    from agent.features.network import network_feature

    make_engine = None
    if os.environ.get("HOSTAGENT_TEST_FAKE_NETWORK") == "1":
        from tests.network_fake import FakeEngine

        def make_engine(state_dir, publish):
            return FakeEngine(None, state_dir)
    elif os.environ.get("HOSTAGENT_TEST_STEP_DELAY") or os.environ.get("HOSTAGENT_TEST_FAIL_STEP"):
        delay = float(os.environ.get("HOSTAGENT_TEST_STEP_DELAY") or 0)
        fail = int(os.environ.get("HOSTAGENT_TEST_FAIL_STEP") or -1)

        def hook(index, step):
            time.sleep(delay)
            if index == fail:
                raise OSError(5, f"injected failure at step {index}")

        def make_engine(state_dir, publish):
            from agent.backends.netconf import NetconfBackend
            from agent.network.engine import NetworkEngine
            return NetworkEngine(NetconfBackend(None), state_dir, step_hook=hook)
    plugins = []
    if make_engine is not None or all(f.name != "network" for f in features.FEATURES):
        # Replace the built-in network feature (when this build has it).
        features.FEATURES = daemon.FEATURES = tuple(f for f in features.FEATURES if f.name != "network")
        plugins.append(network_feature(make_engine) if make_engine else network_feature())
    sys.exit(cli.main(plugins=plugins))
