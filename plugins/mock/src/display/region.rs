//! Rectangles and regions of the screen: what a viewer asked for, and what it does
//! not have yet (in its current pixel format).

/// A rectangle in pixels (u32, so that `x + w` cannot overflow).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    /// The overlap of two rectangles, if any.
    pub fn intersect(&self, other: &Rect) -> Option<Rect> {
        let (x0, y0) = (self.x.max(other.x), self.y.max(other.y));
        let x1 = (self.x + self.w).min(other.x + other.w);
        let y1 = (self.y + self.h).min(other.y + other.h);
        (x0 < x1 && y0 < y1).then(|| Rect {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        })
    }

    /// The smallest rectangle holding both.
    pub fn bounds(&self, other: &Rect) -> Rect {
        let (x0, y0) = (self.x.min(other.x), self.y.min(other.y));
        let x1 = (self.x + self.w).max(other.x + other.w);
        let y1 = (self.y + self.h).max(other.y + other.h);
        Rect {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        }
    }

    /// `self` without `other`: up to four disjoint rectangles (above, below, left,
    /// right of the overlap).
    fn minus(&self, other: &Rect) -> Vec<Rect> {
        let Some(cut) = self.intersect(other) else {
            return vec![*self];
        };
        let (x1, y1) = (self.x + self.w, self.y + self.h);
        let (cx1, cy1) = (cut.x + cut.w, cut.y + cut.h);
        [
            Rect {
                h: cut.y - self.y,
                ..*self
            },
            Rect {
                y: cy1,
                h: y1 - cy1,
                ..*self
            },
            Rect {
                y: cut.y,
                w: cut.x - self.x,
                h: cut.h,
                ..*self
            },
            Rect {
                x: cx1,
                y: cut.y,
                w: x1 - cx1,
                h: cut.h,
            },
        ]
        .into_iter()
        .filter(|r| r.w > 0 && r.h > 0)
        .collect()
    }
}

/// A set of disjoint rectangles.
#[derive(Debug, Default)]
pub struct Region(Vec<Rect>);

impl Region {
    /// The region that is all of `rect`.
    pub fn of(rect: Rect) -> Region {
        Region(vec![rect])
    }

    /// Removes the part of the region inside `area` and returns it.
    pub fn take(&mut self, area: &Rect) -> Vec<Rect> {
        let mut inside = Vec::new();
        let mut rest = Vec::new();
        for r in self.0.drain(..) {
            match r.intersect(area) {
                Some(cut) => {
                    inside.push(cut);
                    rest.extend(r.minus(area));
                }
                None => rest.push(r),
            }
        }
        self.0 = rest;
        inside
    }
}
