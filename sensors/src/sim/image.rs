//! The register spaces of a simulated Modbus device.

use std::sync::{Arc, RwLock};

use crate::modbus::{RegisterKind, ValueType, WordOrder, encode_value};

const SPACE: usize = 1 << 16;

/// Holding and input registers of one simulated device, 65536 words each.
#[derive(Clone)]
pub struct RegisterImage {
    holding: Box<[u16]>,
    input: Box<[u16]>,
}

/// An image shared between the server answering requests and the task updating it.
pub type SharedImage = Arc<RwLock<RegisterImage>>;

impl std::fmt::Debug for RegisterImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterImage").finish_non_exhaustive()
    }
}

impl Default for RegisterImage {
    fn default() -> Self {
        Self::new()
    }
}

impl RegisterImage {
    /// An image with every register at 0.
    pub fn new() -> Self {
        RegisterImage {
            holding: vec![0; SPACE].into_boxed_slice(),
            input: vec![0; SPACE].into_boxed_slice(),
        }
    }

    /// Wraps the image for sharing with [`crate::sim::serve_modbus_tcp`].
    pub fn shared(self) -> SharedImage {
        Arc::new(RwLock::new(self))
    }

    fn space(&self, kind: RegisterKind) -> &[u16] {
        match kind {
            RegisterKind::Holding => &self.holding,
            RegisterKind::Input => &self.input,
        }
    }

    fn space_mut(&mut self, kind: RegisterKind) -> &mut [u16] {
        match kind {
            RegisterKind::Holding => &mut self.holding,
            RegisterKind::Input => &mut self.input,
        }
    }

    pub fn get(&self, kind: RegisterKind, addr: u16) -> u16 {
        self.space(kind)[usize::from(addr)]
    }

    /// Registers `start .. start + count`, or `None` past the end of the space.
    pub fn read(&self, kind: RegisterKind, start: u16, count: u16) -> Option<&[u16]> {
        let from = usize::from(start);
        self.space(kind).get(from..from + usize::from(count))
    }

    /// Writes consecutive registers; words that would fall past 0xFFFF are dropped.
    pub fn set_words(&mut self, kind: RegisterKind, addr: u16, words: &[u16]) {
        let space = self.space_mut(kind);
        for (slot, w) in space.iter_mut().skip(usize::from(addr)).zip(words) {
            *slot = *w;
        }
    }

    pub fn set_u16(&mut self, kind: RegisterKind, addr: u16, value: u16) {
        self.set_words(kind, addr, &[value]);
    }

    pub fn set_i16(&mut self, kind: RegisterKind, addr: u16, value: i16) {
        // Two's complement bits, as the register carries them.
        self.set_words(kind, addr, &[value as u16]);
    }

    pub fn set_u32(&mut self, kind: RegisterKind, addr: u16, value: u32, order: WordOrder) {
        self.set_value(kind, addr, ValueType::Uint32, order, f64::from(value));
    }

    pub fn set_i32(&mut self, kind: RegisterKind, addr: u16, value: i32, order: WordOrder) {
        self.set_value(kind, addr, ValueType::Int32, order, f64::from(value));
    }

    pub fn set_f32(&mut self, kind: RegisterKind, addr: u16, value: f32, order: WordOrder) {
        self.set_value(kind, addr, ValueType::Float32, order, f64::from(value));
    }

    pub fn set_u64(&mut self, kind: RegisterKind, addr: u16, value: u64, order: WordOrder) {
        let mut words: Vec<u16> = (0..4).rev().map(|i| (value >> (16 * i)) as u16).collect();
        if order == WordOrder::Cdab {
            words.reverse();
        }
        self.set_words(kind, addr, &words);
    }

    /// Encodes `value` as `ty` (integers rounded and saturated).
    pub fn set_value(
        &mut self,
        kind: RegisterKind,
        addr: u16,
        ty: ValueType,
        order: WordOrder,
        value: f64,
    ) {
        self.set_words(kind, addr, &encode_value(ty, order, value));
    }

    /// Writes `text` as ASCII, two characters per register, high byte first,
    /// NUL-padded to `registers` registers and cut if longer.
    pub fn set_string(&mut self, kind: RegisterKind, addr: u16, text: &str, registers: u16) {
        let mut bytes: Vec<u8> = text.bytes().take(usize::from(registers) * 2).collect();
        bytes.resize(usize::from(registers) * 2, 0);
        let words: Vec<u16> = bytes
            .chunks(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .collect();
        self.set_words(kind, addr, &words);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::decode_value;

    #[test]
    fn values_read_back_through_the_decoder() {
        let mut img = RegisterImage::new();
        img.set_f32(RegisterKind::Input, 0x34, -1234.5, WordOrder::Abcd);
        img.set_i16(RegisterKind::Holding, 10, -7);
        img.set_u32(RegisterKind::Holding, 20, 70000, WordOrder::Cdab);
        img.set_u64(RegisterKind::Holding, 30, 1 << 40, WordOrder::Abcd);
        let r = |k, a, n| img.read(k, a, n).expect("in range").to_vec();
        assert_eq!(
            decode_value(
                ValueType::Float32,
                WordOrder::Abcd,
                &r(RegisterKind::Input, 0x34, 2)
            ),
            Some(-1234.5)
        );
        assert_eq!(img.get(RegisterKind::Holding, 10), 0xFFF9);
        assert_eq!(
            decode_value(
                ValueType::Uint32,
                WordOrder::Cdab,
                &r(RegisterKind::Holding, 20, 2)
            ),
            Some(70000.0)
        );
        assert_eq!(
            decode_value(
                ValueType::Uint64,
                WordOrder::Abcd,
                &r(RegisterKind::Holding, 30, 4)
            ),
            Some((1u64 << 40) as f64)
        );
        // Input and holding spaces are separate.
        assert_eq!(img.get(RegisterKind::Holding, 0x34), 0);
    }

    #[test]
    fn strings_are_padded_and_writes_stop_at_the_end_of_the_space() {
        let mut img = RegisterImage::new();
        img.set_string(RegisterKind::Holding, 100, "SunS", 4);
        assert_eq!(
            img.read(RegisterKind::Holding, 100, 4),
            Some(&[0x5375, 0x6E53, 0, 0][..])
        );
        img.set_u32(RegisterKind::Holding, 0xFFFF, 0x0001_0002, WordOrder::Abcd);
        assert_eq!(img.get(RegisterKind::Holding, 0xFFFF), 1);
        assert_eq!(img.read(RegisterKind::Holding, 0xFFFF, 2), None);
    }
}
