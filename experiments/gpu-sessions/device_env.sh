# The setup the device scripts share (gpu_session.sh, gpu_best_search.sh,
# bf16_host_session.sh), sourced once each has set OUT: runs land in $R, and $PY (PYTHON
# overrides it) imports this checkout's src before any installed copy, so a lent machine
# with only torch needs no install. split_line reads the run lists (screens-8.txt...).
: "${DATA:?set DATA to the folder holding cifar-10-batches-py}"
R=$OUT/runs
mkdir -p "$R"
export TINYCIFAR_DATA=$DATA PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}

split_line() {  # split_line LINE: a list's line ("NAME ARGS...", shell quoting, # comments) into $words
  mapfile -t words < <($PY -c 'import shlex, sys; w = shlex.split(sys.argv[1], comments=True); w and print(*w, sep="\n")' "$1")
}
