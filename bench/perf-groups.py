#!/usr/bin/env python3
# Groups a `perf record` profile of the alarm-tray ingest child by where the CPU goes
# (thread + leaf symbol; release builds have no frame pointers). docs/BENCH.md, issue 28.
# Usage: bench/perf-groups.py /tmp/ours.perf
import sys,re,subprocess
f=sys.argv[1]
out=subprocess.run(["perf","report","-i",f,"--no-children","--sort","comm,dso,sym","-g","none","--stdio"],capture_output=True,text=True).stdout
cats={}
def cat(comm,dso,sym):
    s=sym
    if comm.startswith('audit'): return 'audit trail thread (SQLite + SHA-256 + its fsync)'
    if comm.startswith('history-check'): return 'WAL checkpoint thread (copy log pages to the db file)'
    if re.search(r'fsync|fdatasync|jbd2|blkdev|nvme|virtio|iowrite|ext4_sync|file_write_and_wait',s): return 'fsync (kernel)'
    if re.search(r'sqlite3|pcache|pager|wal[A-Z]|btree|vdbe|balance_|getPage|rusqlite|Btree|Vdbe|releaseMem|Pager',s,re.I): return 'SQLite insert/update (user)'
    if re.search(r'serde_json|payload|Lenient|serde_core|::text$|Deserialize|deserialize',s): return 'JSON (parse + audit/status JSON)'
    if re.search(r'stomp|Decoder|on_bytes|SessionState|take_frame|delivery',s): return 'STOMP parse + session'
    if re.search(r'wire::|tungstenite|Ws::|mask|FrameHeader',s): return 'WebSocket framing'
    if re.search(r'malloc|free|realloc|_int_|unlink_chunk|consolidate|alloc::|RawVec|tcache',s): return 'allocation (malloc/free)'
    if re.search(r'memmove|memcpy|memset|memcmp|from_utf8|Utf8Chunks|lossy',s): return 'copies/UTF-8 checks (memmove, memcmp, from_utf8)'
    if re.search(r'fmt|format|write_str|pad_integral|Display',s): return 'formatting (format!, keys, audit text)'
    if re.search(r'sha2|Sha256',s): return 'SHA-256'
    if dso.startswith('[kernel'):
        if re.search(r'tcp|sock|skb|inet|ip_|net_|softirq|_copy_to_iter|napi|loopback|__sys_recv|__sys_send',s): return 'kernel: socket (TCP loopback read/write)'
        if re.search(r'ext4|filemap|folio|iomap|generic_perform|vfs_|pread|pwrite|page_cache|xas_|lruvec|copy_folio|mark_buffer|block_write',s): return 'kernel: file read/write (page cache)'
        if re.search(r'futex|schedule|task_switch|wake|spin_unlock|epoll|hrtimer|irq|syscall|entry_SYSCALL|fdget',s): return 'kernel: wakeups, futex, epoll, syscalls'
        return 'kernel: other'
    if re.search(r'tokio|mpsc|Notify|park|parking|epoll|pthread|mutex|futex|__lll',s): return 'runtime: tokio, channels, locks'
    if re.search(r'alarm_tray::engine',s): return 'engine logic (alarms, rules, status)'
    if re.search(r'hash|Hasher|sip|HashMap|BTreeMap|btree',s): return 'hash/btree maps'
    if dso.startswith('libc'): return 'libc: other (read/write wrappers)'
    return 'other'
tot=0
for line in out.splitlines():
    m=re.match(r'\s+([\d.]+)%\s+(\S+)\s+(\S+)\s+\[.\]\s+(.*)$',line)
    if not m: continue
    p=float(m.group(1)); c=cat(m.group(2),m.group(3),m.group(4).strip())
    cats[c]=cats.get(c,0)+p; tot+=p
for k,v in sorted(cats.items(),key=lambda x:-x[1]): print(f"{v:6.1f}%  {k}")
print(f"{tot:6.1f}% total")
