"""``python -m collapse_lab`` runs the command-line interface."""

from collapse_lab.cli import main

if __name__ == "__main__":
    main()
