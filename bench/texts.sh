# Shared by bench/codecs.sh and bench/stored-size.sh (sourced, not run): the sample texts.

# Writes prose.all, source.all and log.all (about 11 MB each) into the directory $1.
make_texts() {
  local WORK=$1
  # Prose: this project's docs, then the Markdown of the crates in cargo's registry, then the
  # machine's Debian changelogs: about 11 MB of text that does not repeat itself.
  {
    cat README.md docs/*.md crates/actix-session-stores/README.md
    find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -name '*.md' -size -300k 2>/dev/null | sort | xargs cat
    for f in /usr/share/doc/*/changelog*.gz; do zcat "$f"; done 2>/dev/null
  } > "$WORK/prose.all"
  find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -name '*.rs' -size -200k 2>/dev/null | sort | awk 'NR <= 4000' \
    | xargs cat > "$WORK/source.all"
  python3 - "$WORK/log.all" <<'PY'
import random, sys
random.seed(7)
paths = ["/", "/action", "/action/raw", "/static/style.css", "/healthz", "/readyz", "/forget"]
agents = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36",
          "curl/8.5.0", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15"]
with open(sys.argv[1], "w") as out:
    size, t = 0, 1765000000
    while size < 11_000_000:
        t += random.randint(0, 3)
        line = '10.%d.%d.%d - - [%d] "%s %s?page=%d HTTP/1.1" %d %d %dms "%s"\n' % (
            random.randint(0, 255), random.randint(0, 255), random.randint(1, 254), t,
            random.choice(["GET", "GET", "GET", "POST"]), random.choice(paths), random.randint(1, 40),
            random.choice([200, 200, 200, 303, 404, 413, 503]), random.randint(200, 90000),
            random.randint(1, 900), random.choice(agents))
        out.write(line)
        size += len(line)
PY
}
