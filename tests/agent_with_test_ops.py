"""``python -m tests.agent_with_test_ops serve ...``: the real agent with the
test-only Mutator feature (tests/testing_service.py).  Side effects go to
``$HOSTAGENT_TEST_SIDE_EFFECTS``."""
import os
import sys

from agent import cli
from tests.testing_service import mutator_feature

if __name__ == "__main__":
    sys.exit(cli.main(plugins=[mutator_feature(os.environ["HOSTAGENT_TEST_SIDE_EFFECTS"])]))
