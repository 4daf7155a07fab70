"""``python -m numbacnn`` runs the command line, for machines where the script is not on PATH."""

from .cli import main

if __name__ == "__main__":
    main()
