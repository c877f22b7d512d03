#!/usr/bin/env python3
"""Lossy UDP relay for IPMI tests: 127.0.0.1:LISTEN <-> 127.0.0.1:TARGET.

One upstream socket per client address. Datagrams are numbered from 1 per direction (c2s,
s2c) across all clients. Deterministic faults by number, random faults by rate (seeded):

  --drop-c2s N[,N]      drop client->BMC datagram N      --drop-s2c N[,N]   drop BMC->client N
  --dup-s2c N[,N]       send BMC->client N twice         --delay-s2c N:MS   deliver N MS ms late
  --replay-s2c N:MS     forward N and replay a copy after MS ms
  --delay-c2s N:MS      deliver client->BMC datagram N MS ms late (BMC sees resends first)
  --die-after N         drop every client->BMC datagram after the N-th
  --drop P              drop each datagram (both ways) with probability P
  --dup P               duplicate each BMC->client datagram with probability P
  --delay P:MS          delay each BMC->client datagram by up to MS ms with probability P
  --seed S              random seed (default 1)
Log: one line per datagram "<t> c2s|s2c <n> <len> fwd|DROP|DUP|DELAY|REPLAY". Exits by itself
after --lifetime seconds.
"""
import argparse, heapq, random, select, socket, sys, time


def nums(s):
    return {int(x) for x in s.split(",") if x} if s else set()


def pairs(s):
    out = {}
    for item in (s or "").split(","):
        if item:
            n, ms = item.split(":")
            out[int(n)] = int(ms) / 1000.0
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--lifetime", type=float, default=120)
    ap.add_argument("--drop-c2s", default="")
    ap.add_argument("--drop-s2c", default="")
    ap.add_argument("--dup-s2c", default="")
    ap.add_argument("--delay-s2c", default="")
    ap.add_argument("--replay-s2c", default="")
    ap.add_argument("--delay-c2s", default="")
    ap.add_argument("--die-after", type=int, default=0)
    ap.add_argument("--drop", type=float, default=0.0)
    ap.add_argument("--dup", type=float, default=0.0)
    ap.add_argument("--delay", default="")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    drop_c2s, drop_s2c, dup_s2c = nums(a.drop_c2s), nums(a.drop_s2c), nums(a.dup_s2c)
    delay_s2c, replay_s2c = pairs(a.delay_s2c), pairs(a.replay_s2c)
    delay_c2s = pairs(a.delay_c2s)
    delay_p, delay_max = 0.0, 0.0
    if a.delay:
        p, ms = a.delay.split(":")
        delay_p, delay_max = float(p), int(ms) / 1000.0

    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(("127.0.0.1", a.listen))
    target = ("127.0.0.1", a.target)
    ups = {}  # client addr -> upstream socket
    back = {}  # upstream fd -> client addr
    timers = []  # (when, seq, sock, data, addr)
    tseq = 0
    n_c2s = n_s2c = 0
    start = time.monotonic()
    log = open(a.log, "w", buffering=1)

    def note(d, n, ln, what):
        log.write("%.4f %s %d %d %s\n" % (time.monotonic() - start, d, n, ln, what))

    while time.monotonic() - start < a.lifetime:
        now = time.monotonic()
        while timers and timers[0][0] <= now:
            _, _, s, data, addr = heapq.heappop(timers)
            try:
                s.sendto(data, addr)
            except OSError:
                pass
        wait = 0.5 if not timers else max(0.0, min(0.5, timers[0][0] - now))
        socks = [front] + list(ups.values())
        r, _, _ = select.select(socks, [], [], wait)
        for s in r:
            try:
                data, addr = s.recvfrom(65535)
            except OSError:
                continue
            if s is front:
                n_c2s += 1
                if addr not in ups:
                    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    u.bind(("127.0.0.1", 0))
                    ups[addr] = u
                    back[u.fileno()] = addr
                if n_c2s in drop_c2s or (a.die_after and n_c2s > a.die_after) or rnd.random() < a.drop:
                    note("c2s", n_c2s, len(data), "DROP")
                    continue
                if n_c2s in delay_c2s:
                    note("c2s", n_c2s, len(data), "DELAY")
                    tseq += 1
                    heapq.heappush(timers, (time.monotonic() + delay_c2s[n_c2s], tseq, ups[addr], data, target))
                    continue
                note("c2s", n_c2s, len(data), "fwd")
                ups[addr].sendto(data, target)
            else:
                n_s2c += 1
                client = back.get(s.fileno())
                if client is None:
                    continue
                if n_s2c in drop_s2c or rnd.random() < a.drop:
                    note("s2c", n_s2c, len(data), "DROP")
                    continue
                delay = delay_s2c.get(n_s2c)
                if delay is None and delay_p and rnd.random() < delay_p:
                    delay = rnd.random() * delay_max
                if delay is not None:
                    note("s2c", n_s2c, len(data), "DELAY")
                    tseq += 1
                    heapq.heappush(timers, (time.monotonic() + delay, tseq, front, data, client))
                    continue
                front.sendto(data, client)
                if n_s2c in dup_s2c or (a.dup and rnd.random() < a.dup):
                    note("s2c", n_s2c, len(data), "DUP")
                    front.sendto(data, client)
                elif n_s2c in replay_s2c:
                    note("s2c", n_s2c, len(data), "REPLAY")
                    tseq += 1
                    heapq.heappush(timers, (time.monotonic() + replay_s2c[n_s2c], tseq, front, data, client))
                else:
                    note("s2c", n_s2c, len(data), "fwd")
    return 0


if __name__ == "__main__":
    sys.exit(main())
