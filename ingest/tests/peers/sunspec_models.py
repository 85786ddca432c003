#!/usr/bin/env python3
"""A SunSpec device served by pymodbus, and what pysunspec2 reads from it.

The register image is built here from the SunSpec model definitions pysunspec2
ships (offsets, types, scale factors), with random values: some points are left
"not implemented" (their type's sentinel), every scale factor is random, and one
scale factor per model is not implemented together with the points it scales.
pysunspec2 then scans the server over Modbus TCP, as any SunSpec client would,
and its decoded values are printed as one JSON line, for the Rust side to
compare with its own discovery and decoding of the same server.

usage: sunspec_models.py PORT BASE SEED
Prints one JSON line {"base", "models": [{"id", "address", "length", "points"}]}
once pysunspec2 has read everything, then serves until stdin closes.
"""
import asyncio
import json
import math
import os
import random
import struct
import sys
import threading

import sunspec2
import sunspec2.modbus.client as client
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import StartAsyncTcpServer

MODELS = [1, 101, 102, 103, 111, 112, 113, 123, 124, 201, 202, 203, 204, 211, 212, 213, 214, 701]
JSON_DIR = os.path.join(os.path.dirname(sunspec2.__file__), "models", "json")

UNIMPL = {
    "int16": [0x8000], "sunssf": [0x8000], "uint16": [0xFFFF], "enum16": [0xFFFF],
    "bitfield16": [0xFFFF], "acc16": [0], "int32": [0x8000, 0], "uint32": [0xFFFF, 0xFFFF],
    "enum32": [0xFFFF, 0xFFFF], "bitfield32": [0xFFFF, 0xFFFF], "acc32": [0, 0],
    "float32": [0x7FC0, 0], "uint64": [0xFFFF] * 4, "acc64": [0] * 4, "int64": [0x8000, 0, 0, 0],
}


def words_of(value, size):
    return [(value >> (16 * (size - 1 - i))) & 0xFFFF for i in range(size)]


def random_point(rng, ty, size):
    if ty in ("int16",):
        return words_of(rng.randint(-32767, 32767) & 0xFFFF, 1)
    if ty in ("uint16", "enum16", "bitfield16"):
        return [rng.randint(0, 0xFFFE)]
    if ty == "int32":
        return words_of(rng.randint(-(2**31) + 1, 2**31 - 1) & 0xFFFFFFFF, 2)
    if ty in ("uint32", "bitfield32", "enum32"):
        return words_of(rng.randint(0, 2**32 - 2), 2)
    if ty == "acc32":
        return words_of(rng.randint(1, 2**32 - 1), 2)
    if ty == "uint64":
        return words_of(rng.randint(0, 2**53), 4)
    if ty == "float32":
        bits = struct.unpack(">I", struct.pack(">f", rng.uniform(-1e5, 1e5)))[0]
        return words_of(bits, 2)
    if ty == "string":
        text = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(rng.randint(1, 2 * size)))
        raw = text.encode()[: 2 * size].ljust(2 * size, b"\0")
        return [(raw[i] << 8) | raw[i + 1] for i in range(0, 2 * size, 2)]
    return [0] * size  # pad


def model_image(rng, mid):
    with open(os.path.join(JSON_DIR, f"model_{mid}.json")) as f:
        points = json.load(f)["group"]["points"]
    body_len = sum(p["size"] for p in points) - 2
    sfs = [p["name"] for p in points if p["type"] == "sunssf"]
    # One scale factor not implemented, with every point it scales.
    dead_sf = rng.choice(sfs) if sfs else None
    regs = []
    for p in points:
        name, ty, size = p["name"], p["type"], p["size"]
        if name == "ID":
            regs += [mid]
        elif name == "L":
            regs += [body_len]
        elif ty == "sunssf":
            regs += UNIMPL["sunssf"] if name == dead_sf else words_of(rng.randint(-3, 2) & 0xFFFF, 1)
        elif p.get("sf") == dead_sf and dead_sf is not None and ty in UNIMPL:
            regs += UNIMPL[ty]
        elif ty in UNIMPL and rng.random() < 0.2:
            regs += UNIMPL[ty]
        else:
            regs += random_point(rng, ty, size)
    assert len(regs) == body_len + 2, (mid, len(regs), body_len)
    return regs


def image(base, seed):
    rng = random.Random(seed)
    regs = [0x5375, 0x6E53]
    for mid in MODELS:
        regs += model_image(rng, mid)
    regs += [0xFFFF, 0]
    values = [0] * 65536
    values[base: base + len(regs)] = regs
    return values


def serve(port, values, started):
    async def main():
        # pymodbus addresses data blocks from 1 (protocol address 0 is index 1).
        block = ModbusSequentialDataBlock(1, values[:65535])
        context = ModbusServerContext(devices=ModbusDeviceContext(hr=block), single=True)
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, started.set)
        await StartAsyncTcpServer(context=context, address=("127.0.0.1", port))

    asyncio.run(main())


def jsonable(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    return v


def main():
    port, base, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    started = threading.Event()
    threading.Thread(target=serve, args=(port, image(base, seed), started), daemon=True).start()
    started.wait(10)
    dev = client.SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=port, timeout=5)
    for _ in range(50):
        try:
            dev.connect()
            break
        except Exception:
            threading.Event().wait(0.1)
    dev.scan()
    out = {"base": dev.base_addr, "models": []}
    for m in dev.model_list:
        points = {}
        for name, pt in m.points.items():
            if name in ("ID", "L") or pt.pdef["type"] in ("sunssf", "string", "pad"):
                continue
            points[name] = jsonable(pt.cvalue)
        out["models"].append({"id": m.model_id, "address": m.model_addr, "length": m.model_len, "points": points})
    dev.close()
    print(json.dumps(out), flush=True)
    sys.stdin.read()


main()
