# Shared steps of the trainers' CPU side environments (.ci/areal, .ci/verl, .ci/skyrl); sourced.
#   side_venv VENV                    a Python 3.11 virtualenv with pip upgraded and CPU torch 2.13.0
#                                     (installed first, so that what comes after finds a torch and pip
#                                     fetches no CUDA build; the CI machines' pip config has its
#                                     find-links at /opt/wheels, which holds torch-2.13.0+cpu; elsewhere
#                                     set PIP_INDEX_URL=https://download.pytorch.org/whl/cpu for it). Sets PIP.
#   install_project PROJECT REQ...    the project, built from a copy of the tree (an in-tree build
#                                     writes build/ in the repository, which tests/integration/
#                                     test_wheel.py also builds from), with REQ... in ONE pip call so
#                                     pip sees every constraint at once.
side_venv() {
    python3.11 -m venv "$1"
    PIP="$1/bin/pip"
    "$PIP" install -q -U pip
    "$PIP" install -q torch==2.13.0
}

install_project() {
    local project=$1 src
    shift
    src=$(mktemp -d)
    python3 -c 'import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2], dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git", ".venv", "build", "runs", "*.egg-info", "__pycache__"))' "$project" "$src"
    "$PIP" install -q "$src" "$@"
    rm -rf "$src"
}
