#!/usr/bin/env bash
# Static checks: lint, format, types, notebook sizes, the docs site. One line per check; exits 1 if any fails.
#   bash .ci/checks.sh            # all of them
#   bash .ci/checks.sh ruff mypy  # some (names: ruff format mypy notebooks docs links math)
#   (links and math check the site that docs builds: name docs before them)
# Needs the lint and docs tools (see CONTRIBUTING.md). Each check's output goes to
# $CHECKS_LOG_DIR/<name>.log (default: a temporary folder) and is printed in full when it fails.
set -uo pipefail
cd "$(dirname "$0")/.."
export NO_MKDOCS_2_WARNING=1 MPLBACKEND=Agg
log_dir="${CHECKS_LOG_DIR:-$(mktemp -d)}"
mkdir -p "$log_dir"

declare -A commands=(
  [ruff]="ruff check ."
  [format]="ruff format --check ."
  [mypy]="mypy"
  [notebooks]="python tools/check_notebook_size.py"
  [docs]="mkdocs build --strict --site-dir $log_dir/site"
  [links]="python tools/check_links.py $log_dir/site"
  [math]="python tools/check_site_math.py $log_dir/site"
)
order=(ruff format mypy notebooks docs links math)  # links and math read the site that docs built
selected=("$@")
[ ${#selected[@]} -eq 0 ] && selected=("${order[@]}")

failed=()
for name in "${selected[@]}"; do
  cmd="${commands[$name]:-}"
  if [ -z "$cmd" ]; then
    echo "unknown check '$name'; the checks are: ${order[*]}" >&2
    exit 2
  fi
  start=$SECONDS
  if $cmd > "$log_dir/$name.log" 2>&1; then
    printf 'check %-10s ok      %4ds  %s\n' "$name" $((SECONDS - start)) "$cmd"
  else
    printf 'check %-10s FAILED  %4ds  %s\n' "$name" $((SECONDS - start)) "$cmd"
    sed 's/^/    /' "$log_dir/$name.log" | tail -n 60
    failed+=("$name")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "checks failed: ${failed[*]} (full logs in $log_dir)"
  exit 1
fi
echo "all ${#selected[@]} checks passed"
