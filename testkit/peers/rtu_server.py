#!/usr/bin/env python3
"""Two Eastron SDM120 meters on one RS-485 bus, served by pymodbus's RTU server.

Unit 2 draws 150 W, unit 5 2300 W; float32 input registers, high word first, at
the SDM120 datasheet addresses (30013 active power, 30001 voltage, 30073 import).

usage: rtu_server.py PORT BAUD PARITY(none|even|odd)
Prints "ready" once it serves.
"""
import asyncio
import struct
import sys

from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import StartAsyncSerialServer


def f32(v):
    hi, lo = struct.unpack(">HH", struct.pack(">f", v))
    return [hi, lo]


def meter(power_w, voltage_v, import_kwh):
    regs = [0] * 0x160
    regs[0x0000:0x0002] = f32(voltage_v)
    regs[0x0006:0x0008] = f32(power_w / voltage_v)
    regs[0x000C:0x000E] = f32(power_w)
    regs[0x0046:0x0048] = f32(50.0)
    regs[0x0048:0x004A] = f32(import_kwh)
    regs[0x004A:0x004C] = f32(0.5)
    # pymodbus addresses data blocks from 1 (protocol address 0 is index 1).
    return ModbusDeviceContext(ir=ModbusSequentialDataBlock(1, regs))


async def main():
    port, baud, parity = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    context = ModbusServerContext(devices={2: meter(150.0, 230.0, 12.5), 5: meter(2300.0, 231.0, 4321.0)}, single=False)
    loop = asyncio.get_running_loop()
    loop.call_later(0.5, lambda: print("ready", flush=True))
    await StartAsyncSerialServer(
        context=context,
        port=port,
        baudrate=baud,
        parity={"none": "N", "even": "E", "odd": "O"}[parity],
        stopbits=1,
        bytesize=8,
    )


asyncio.run(main())
