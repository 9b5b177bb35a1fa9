#!/usr/bin/env bash
# Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/, not
# committed) from the golden cases and the netlink fixtures, so that every
# target starts from inputs that reach deep into its parser.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=$here/corpus
mkdir -p "$out"/{config_tree,fast_readers,ipvsadm_dump,keepalived_conf,netlink_messages,saved_plan}

# config_tree: records PATH\0CONTENT separated by \0\0; overlay paths under overlay/.
for case in "$root"/tests/golden/*/; do
    name=$(basename "$case")
    {
        first=1
        for sub in config overlay; do
            [ -d "$case$sub" ] || continue
            while IFS= read -r -d '' f; do
                rel=${f#"$case$sub/"}
                [ "$sub" = overlay ] && rel="overlay/$rel"
                [ $first = 1 ] || printf '\0\0'
                first=0
                printf '%s\0' "$rel"
                cat "$f"
            done < <(find "$case$sub" -type f -print0 | sort -z)
        done
    } > "$out/config_tree/$name"
done

# fast_readers: the first byte picks the reader (0 YAML service, 1 YAML
# route, 2 JSON frontend, 3 JSON backend).
i=0
while IFS= read -r -d '' f; do
    case "$f" in
        */services/*.yaml | */services/*.yml) b='\x00' ;;
        */routes/*.yaml | */routes/*.yml) b='\x01' ;;
        */frontend) b='\x02' ;;
        */backends/*) b='\x03' ;;
        *) continue ;;
    esac
    { printf "$b"; cat "$f"; } > "$out/fast_readers/seed-$i"
    i=$((i + 1))
done < <(find "$root/tests/golden" "$root/examples" -type f -print0 | sort -z)

# ipvsadm_dump: live dumps and rendered ipvsadm output, and the import samples.
i=0
while IFS= read -r -d '' f; do
    cp "$f" "$out/ipvsadm_dump/seed-$i"
    i=$((i + 1))
done < <(find "$root/tests/golden" "$root/tests/import" \( -name 'live*.txt' -o -name 'ipvsadm.out' -o -name '*.dump' \) -print0 | sort -z)

# keepalived_conf: the import samples.
i=0
while IFS= read -r -d '' f; do
    cp "$f" "$out/keepalived_conf/seed-$i"
    i=$((i + 1))
done < <(find "$root/tests/import/keepalived" -name '*.conf' -print0 | sort -z)

# netlink_messages: the annotated kernel captures, as bytes.
for f in "$root"/tests/fixtures/netlink/*.hex; do
    perl -ne 's/#.*//; print pack("H*", join("", /([0-9a-fA-F]{2})/g))' "$f" > "$out/netlink_messages/$(basename "$f" .hex)"
done

# saved_plan: the JSON plans of the golden cases.
i=0
while IFS= read -r -d '' f; do
    grep -q '"format_version"' "$f" || continue
    cp "$f" "$out/saved_plan/seed-$i"
    i=$((i + 1))
done < <(find "$root/tests/golden" -name '*.out' -print0 | sort -z)

for t in "$out"/*/; do
    echo "fuzz/seeds.sh: $(ls "$t" | wc -l) seeds in $t" >&2
done
