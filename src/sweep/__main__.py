import sys

from sweep.cli import main

if __name__ == "__main__":  # not when multiprocessing imports the parent's main module into a worker
    sys.exit(main())
