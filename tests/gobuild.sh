# Sourced by tests/controlplane/build.sh and tests/helm/build.sh: a Go binary kept in the user cache
# (outside the repo; never committed) under a name that carries a hash of its inputs, so it is
# rebuilt only when they change.

# go_cached NAME DIGEST BUILD: print the path of NAME-DIGEST in the cache, first calling the shell
# function BUILD with the path to write it to when it is not there yet.
go_cached() {
  local name="$1" digest="$2" build="$3"
  local out_dir="${JITACCESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jitaccess}/$name"
  local binary="$out_dir/$name-$digest"
  if [[ -x "$binary" ]]; then
    echo "$binary"
    return 0
  fi
  mkdir -p "$out_dir"
  # One build at a time: concurrent test runs on a fresh machine wait for the first one
  # instead of compiling the same binary side by side (and racing on its temporary file).
  exec 9>"$out_dir/.build.lock"
  flock 9
  if [[ ! -x "$binary" ]]; then
    "$build" "$binary.tmp"
    mv "$binary.tmp" "$binary"
    find "$out_dir" -maxdepth 1 -name "$name-*" ! -name "$name-$digest" -delete
  fi
  echo "$binary"
}
