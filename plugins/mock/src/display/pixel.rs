//! Pixel formats (RFC 6143 §7.4) and the screen: the framebuffer is kept as 8-bit
//! RGB once per engine instance and converted into each viewer's format while an
//! update is written, row by row.

use std::sync::OnceLock;

use super::region::Rect;

/// The screen's width.
pub const WIDTH: u16 = 480;
/// The screen's height.
pub const HEIGHT: u16 = 640;
/// The seed's test image: a grey gradient of this many pixels square at the top left.
const GRADIENT: u32 = 256;
/// The colour of the rest of the screen (steel blue: its channels differ, so a viewer
/// that mixes them up shows it).
const BACKGROUND: [u8; 3] = [70, 130, 180];

/// A true-colour pixel format (colour-map formats are refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelFormat {
    /// 8, 16 or 32.
    pub bits_per_pixel: u8,
    /// Bits that carry colour; viewers do not use it to read pixels.
    pub depth: u8,
    /// Multi-byte pixels are sent big endian.
    pub big_endian: bool,
    /// Red, green, blue: the largest value (2^n − 1).
    pub max: [u16; 3],
    /// Red, green, blue: how far the value is shifted left in the pixel.
    pub shift: [u8; 3],
}

impl PixelFormat {
    /// The server's own format (announced in ServerInit): 32 bits per pixel, depth
    /// 24, little endian, 8 bits of red, green and blue at 16, 8 and 0.
    pub const SERVER: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        max: [255, 255, 255],
        shift: [16, 8, 0],
    };

    /// The 16 bytes of PIXEL_FORMAT.
    pub fn to_wire(self) -> [u8; 16] {
        let [r, g, b] = self.max.map(u16::to_be_bytes);
        let [rs, gs, bs] = self.shift;
        [
            self.bits_per_pixel,
            self.depth,
            self.big_endian.into(),
            1,
            r[0],
            r[1],
            g[0],
            g[1],
            b[0],
            b[1],
            rs,
            gs,
            bs,
            0,
            0,
            0,
        ]
    }

    /// Reads a SetPixelFormat's PIXEL_FORMAT; `Err` says why the display cannot
    /// serve it.
    pub fn from_wire(b: &[u8; 16]) -> Result<PixelFormat, String> {
        let bits_per_pixel = b[0];
        if !matches!(bits_per_pixel, 8 | 16 | 32) {
            return Err(format!(
                "the viewer asked for {bits_per_pixel} bits per pixel; RFB allows 8, 16 or 32"
            ));
        }
        if b[3] == 0 {
            return Err("the viewer asked for colour-map pixels (true-colour-flag 0); \
                 the display serves true colour only"
                .into());
        }
        let format = PixelFormat {
            bits_per_pixel,
            depth: b[1],
            big_endian: b[2] != 0,
            max: [0, 1, 2].map(|i| u16::from_be_bytes([b[4 + 2 * i], b[5 + 2 * i]])),
            shift: [b[10], b[11], b[12]],
        };
        let mut used = 0u64;
        for (i, colour) in ["red", "green", "blue"].into_iter().enumerate() {
            let (max, shift) = (u64::from(format.max[i]), u32::from(format.shift[i]));
            let mask = max.checked_shl(shift).unwrap_or(u64::MAX);
            if max == 0 || max & (max + 1) != 0 || mask >> bits_per_pixel != 0 || mask & used != 0 {
                return Err(format!(
                    "the viewer's {colour} channel (max {max}, shift {shift}) does not fit a \
                     {bits_per_pixel}-bit pixel beside the others"
                ));
            }
            used |= mask;
        }
        Ok(format)
    }
}

/// Writes 8-bit RGB in one pixel format.
pub struct Encoder {
    format: PixelFormat,
    /// Per channel and 8-bit level: the scaled value, already shifted.
    tables: [[u32; 256]; 3],
}

impl Encoder {
    /// An encoder for `format`.
    pub fn new(format: PixelFormat) -> Encoder {
        let mut tables = [[0u32; 256]; 3];
        for (c, table) in tables.iter_mut().enumerate() {
            let max = u32::from(format.max[c]);
            for (level, value) in (0u32..).zip(table.iter_mut()) {
                *value = ((level * max + 127) / 255) << format.shift[c];
            }
        }
        Encoder { format, tables }
    }

    /// Appends one pixel.
    fn put(&self, [r, g, b]: [u8; 3], out: &mut Vec<u8>) {
        let [tr, tg, tb] = &self.tables;
        let value = tr[usize::from(r)] | tg[usize::from(g)] | tb[usize::from(b)];
        match (self.format.bits_per_pixel, self.format.big_endian) {
            (8, _) => out.push(value as u8),
            (16, false) => out.extend_from_slice(&(value as u16).to_le_bytes()),
            (16, true) => out.extend_from_slice(&(value as u16).to_be_bytes()),
            (_, false) => out.extend_from_slice(&value.to_le_bytes()),
            (_, true) => out.extend_from_slice(&value.to_be_bytes()),
        }
    }

    /// Appends row `y` of `rect` of the screen, in raw encoding.
    pub fn put_row(&self, screen: &Screen, rect: &Rect, y: u32, out: &mut Vec<u8>) {
        for x in rect.x..rect.x + rect.w {
            self.put(screen.pixel(x, y), out);
        }
    }
}

/// The display's framebuffer, 8-bit RGB, row by row.
pub struct Screen {
    rgb: Vec<[u8; 3]>,
}

impl Screen {
    /// The screen (painted on first use, then shared by every connection of the
    /// engine instance: it never changes).
    pub fn get() -> &'static Screen {
        static SCREEN: OnceLock<Screen> = OnceLock::new();
        SCREEN.get_or_init(Screen::paint)
    }

    /// The seed's 256×256 grey gradient at the top left, the background elsewhere.
    fn paint() -> Screen {
        let (w, h) = (u32::from(WIDTH), u32::from(HEIGHT));
        let mut rgb = Vec::with_capacity((w * h) as usize);
        for y in 0..h {
            for x in 0..w {
                rgb.push(if x < GRADIENT && y < GRADIENT {
                    let g = ((x + y) / 2) as u8;
                    [g, g, g]
                } else {
                    BACKGROUND
                });
            }
        }
        Screen { rgb }
    }

    /// The whole screen.
    pub fn rect() -> Rect {
        Rect {
            x: 0,
            y: 0,
            w: WIDTH.into(),
            h: HEIGHT.into(),
        }
    }

    fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        self.rgb[(y * u32::from(WIDTH) + x) as usize]
    }
}
