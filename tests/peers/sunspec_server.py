#!/usr/bin/env python3
"""A SunSpec inverter served by pymodbus: a Modbus server Communalia did not write.

The register image is built here from the SunSpec layout (Common model 1, inverter
model 103), independently of the node's own simulators, so the node's decoder is
checked against a second reading of the specification.

usage: sunspec_server.py PORT BASE W_RAW W_SF
Prints "ready" once it listens.
"""
import asyncio
import sys

from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import StartAsyncTcpServer


def s16(v):
    return v & 0xFFFF


def string_regs(text, n):
    raw = text.encode("ascii")[: 2 * n].ljust(2 * n, b"\0")
    return [(raw[i] << 8) | raw[i + 1] for i in range(0, 2 * n, 2)]


def image(base, w_raw, w_sf):
    regs = [0x5375, 0x6E53]  # "SunS"
    # Model 1 (common), L = 66: Mn(16) Md(16) Opt(8) Vr(8) SN(16) DA Pad
    common = string_regs("PyModbus", 16) + string_regs("Peer-103", 16) + string_regs("", 8) \
        + string_regs("1.0", 8) + string_regs("PEER0001", 16) + [1, 0x8000]
    assert len(common) == 66
    regs += [1, 66] + common
    # Model 103 (three-phase inverter, integer + scale factors), L = 50.
    m = [0xFFFF] * 50  # offsets below count from the first register after [ID, L]
    NOT_INT16 = 0x8000
    m[0] = 105          # A      (A_SF -1 -> 10.5 A)
    m[1] = m[2] = m[3] = 35
    m[4] = s16(-1)      # A_SF
    m[5] = m[6] = m[7] = 0xFFFF  # PPVphAB.. not implemented (uint16)
    m[8] = m[9] = m[10] = 2305   # PhVphA.. (V_SF -1 -> 230.5 V)
    m[11] = s16(-1)     # V_SF
    m[12] = s16(w_raw)  # W
    m[13] = s16(w_sf)   # W_SF
    m[14] = 0xFFFF      # Hz not implemented: the node must report it missing
    m[15] = s16(-2)     # Hz_SF
    m[16] = NOT_INT16; m[17] = NOT_INT16  # VA, VA_SF
    m[18] = NOT_INT16; m[19] = NOT_INT16  # VAr, VAr_SF
    m[20] = NOT_INT16; m[21] = NOT_INT16  # PF, PF_SF
    m[22] = 0; m[23] = 12345  # WH acc32 = 12345
    m[24] = 0           # WH_SF
    for i in range(25, 31):
        m[i] = NOT_INT16  # DC points and their SFs
    m[31] = 412; m[32] = m[33] = m[34] = NOT_INT16; m[35] = s16(-1)  # TmpCab 41.2 C
    m[36] = 4           # St = MPPT
    m[37] = 0
    m[38:42] = [0, 0, 0, 0]
    m[42:50] = [0] * 8
    regs += [103, 50] + m
    regs += [0xFFFF, 0]
    return regs


async def main():
    port, base, w_raw, w_sf = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    regs = image(base, w_raw, w_sf)
    values = [0] * 65536
    values[base: base + len(regs)] = regs
    # pymodbus addresses data blocks from 1 (protocol address 0 is block index 1).
    block = ModbusSequentialDataBlock(1, values[:65535])
    context = ModbusServerContext(devices=ModbusDeviceContext(hr=block), single=True)
    print("ready", flush=True)
    await StartAsyncTcpServer(context=context, address=("127.0.0.1", port))


asyncio.run(main())
