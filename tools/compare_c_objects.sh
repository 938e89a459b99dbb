#!/bin/bash
# Compare every emitted C model of two snapshot trees (tools/snapshot_artifacts.py) by
# what the compiler makes of it: model.c built with gcc -O2, then its data sections
# (.rodata, .data*, .bss), section sizes and relocations compared byte for byte. Equal
# means the two model.c files describe the same constants, tables and buffers even where
# their text differs (e.g. positional vs designated initializers).
#   tools/compare_c_objects.sh /tmp/before /tmp/after
base=$1; new=$2; ok=0; bad=0
for d in $(cd $base && find . -name model.c -printf '%h\n'); do
  for t in base new; do
    src=$([ $t = base ] && echo $base || echo $new)/$d
    gcc -std=c99 -O2 -c -I$src $src/model.c -o /tmp/cmp_$t.o 2>/tmp/cmp_err || { echo "compile fail $d"; cat /tmp/cmp_err | head; }
    for sec in .rodata .data .data.rel.ro .data.rel.ro.local .data.rel.local .bss; do
      objcopy -O binary --only-section=$sec /tmp/cmp_$t.o /tmp/cmp_${t}$sec 2>/dev/null || true
    done
    size -A /tmp/cmp_$t.o | grep -v "^/tmp" > /tmp/cmp_${t}.size
    readelf -r /tmp/cmp_$t.o | awk 'NR>3 {print $1, $3, $5, $7}' | sort > /tmp/cmp_${t}.rel
  done
  same=1
  for sec in .rodata .data .data.rel.ro .data.rel.ro.local .data.rel.local .bss; do
    cmp -s /tmp/cmp_base$sec /tmp/cmp_new$sec || { same=0; echo "DIFF $d $sec"; }
  done
  cmp -s /tmp/cmp_base.size /tmp/cmp_new.size || { same=0; echo "DIFF $d sizes"; }
  cmp -s /tmp/cmp_base.rel /tmp/cmp_new.rel || { same=0; echo "DIFF $d relocations"; }
  [ $same = 1 ] && ok=$((ok+1)) || bad=$((bad+1))
done
echo "identical data/relocations: $ok, different: $bad"
