//! The count on the tray's alarm icon, drawn at runtime on its RGBA pixels: a red disc
//! (where the icon's "!" badge is) with the number of active unacknowledged alarms in white,
//! `1`–`9`, then `9+`. Hand-drawn digits: a 5×7 bitmap font is all two characters need,
//! and no font or drawing crate has to be built for it.

/// The disc of `icons/tray-alarm.png` (64×64): centre and radius in icon pixels, and its red.
const CENTRE: (f32, f32) = (48.0, 48.0);
const RADIUS: f32 = 13.6;
const RED: [u8; 3] = [218, 54, 51];
const WHITE: [u8; 3] = [255, 255, 255];
/// The size the disc's place is measured for.
const DESIGN: f32 = 64.0;

/// 5×7 glyphs, one row per byte, the high five bits used (`0b1000_0000` is the left column).
fn glyph(c: char) -> Option<[u8; 7]> {
    Some(match c {
        '0' => [0x70, 0x88, 0x98, 0xA8, 0xC8, 0x88, 0x70],
        '1' => [0x20, 0x60, 0x20, 0x20, 0x20, 0x20, 0x70],
        '2' => [0x70, 0x88, 0x08, 0x10, 0x20, 0x40, 0xF8],
        '3' => [0xF8, 0x10, 0x20, 0x10, 0x08, 0x88, 0x70],
        '4' => [0x10, 0x30, 0x50, 0x90, 0xF8, 0x10, 0x10],
        '5' => [0xF8, 0x80, 0xF0, 0x08, 0x08, 0x88, 0x70],
        '6' => [0x30, 0x40, 0x80, 0xF0, 0x88, 0x88, 0x70],
        '7' => [0xF8, 0x08, 0x10, 0x20, 0x40, 0x40, 0x40],
        '8' => [0x70, 0x88, 0x88, 0x70, 0x88, 0x88, 0x70],
        '9' => [0x70, 0x88, 0x88, 0x78, 0x08, 0x10, 0x60],
        // Smaller than a digit, centred on it, so that "9+" fits the disc.
        '+' => [0x00, 0x00, 0x20, 0x70, 0x20, 0x00, 0x00],
        _ => return None,
    })
}

/// The text of the badge: `None` for no alarms, `1`…`9`, `9+`.
pub fn label(count: u32) -> Option<String> {
    match count {
        0 => None,
        1..=9 => Some(count.to_string()),
        _ => Some("9+".into()),
    }
}

/// Draws the badge for `count` on an RGBA image of `width`×`height` (the alarm icon);
/// nothing for 0. Pixels outside the buffer are skipped, so any size is safe.
pub fn draw(rgba: &mut [u8], width: u32, height: u32, count: u32) {
    let Some(text) = label(count) else { return };
    let scale_x = width as f32 / DESIGN;
    let scale_y = height as f32 / DESIGN;
    let (cx, cy) = (CENTRE.0 * scale_x, CENTRE.1 * scale_y);
    let r = RADIUS * scale_x.min(scale_y);
    // The disc, edge smoothed by 4×4 supersampling.
    let (x0, x1) = ((cx - r - 1.0).max(0.0) as u32, (cx + r + 1.0) as u32);
    let (y0, y1) = ((cy - r - 1.0).max(0.0) as u32, (cy + r + 1.0) as u32);
    for y in y0..=y1.min(height.saturating_sub(1)) {
        for x in x0..=x1.min(width.saturating_sub(1)) {
            let mut inside = 0u32;
            for sy in 0..4 {
                for sx in 0..4 {
                    let px = x as f32 + (sx as f32 + 0.5) / 4.0 - cx;
                    let py = y as f32 + (sy as f32 + 0.5) / 4.0 - cy;
                    if px * px + py * py <= r * r {
                        inside += 1;
                    }
                }
            }
            blend(rgba, width, x, y, RED, inside as f32 / 16.0);
        }
    }
    // The digits: 3 icon pixels per font pixel for one character, 2 for two.
    let chars: Vec<[u8; 7]> = text.chars().filter_map(glyph).collect();
    let cell = if chars.len() == 1 { 3.0 } else { 2.0 } * scale_x.min(scale_y);
    let gap = cell;
    let text_w = chars.len() as f32 * 5.0 * cell + (chars.len() as f32 - 1.0) * gap;
    // On whole pixels: cells straddling pixel edges would each blend half a pixel and
    // leave seams between them.
    let left = (cx - text_w / 2.0).round();
    let top = (cy - 7.0 * cell / 2.0).round();
    for (i, g) in chars.iter().enumerate() {
        let gx = left + i as f32 * (5.0 * cell + gap);
        for (row, bits) in g.iter().enumerate() {
            for col in 0..5 {
                if bits & (0x80 >> col) == 0 {
                    continue;
                }
                let fx = gx + col as f32 * cell;
                let fy = top + row as f32 * cell;
                fill(rgba, width, height, (fx, fy), cell, WHITE);
            }
        }
    }
}

/// Fills the square at `at` of side `side` (icon pixels, fractional edges blended).
fn fill(rgba: &mut [u8], width: u32, height: u32, at: (f32, f32), side: f32, color: [u8; 3]) {
    let (x0, y0) = (at.0.floor().max(0.0) as u32, at.1.floor().max(0.0) as u32);
    let (x1, y1) = ((at.0 + side).ceil() as u32, (at.1 + side).ceil() as u32);
    for y in y0..y1.min(height) {
        for x in x0..x1.min(width) {
            let cover_x = ((x + 1) as f32).min(at.0 + side) - (x as f32).max(at.0);
            let cover_y = ((y + 1) as f32).min(at.1 + side) - (y as f32).max(at.1);
            blend(
                rgba,
                width,
                x,
                y,
                color,
                cover_x.clamp(0.0, 1.0) * cover_y.clamp(0.0, 1.0),
            );
        }
    }
}

/// Lays `color` over the pixel with `coverage` (0–1); the pixel becomes opaque as covered.
fn blend(rgba: &mut [u8], width: u32, x: u32, y: u32, color: [u8; 3], coverage: f32) {
    if coverage <= 0.0 {
        return;
    }
    let i = ((y as usize) * (width as usize) + x as usize) * 4;
    let Some(px) = rgba.get_mut(i..i + 4) else {
        return;
    };
    for c in 0..3 {
        px[c] =
            (f32::from(px[c]) * (1.0 - coverage) + f32::from(color[c]) * coverage).round() as u8;
    }
    px[3] = (f32::from(px[3]) + (255.0 - f32::from(px[3])) * coverage).round() as u8;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank() -> Vec<u8> {
        vec![0u8; 64 * 64 * 4]
    }

    fn px(img: &[u8], x: usize, y: usize) -> [u8; 4] {
        let i = (y * 64 + x) * 4;
        [img[i], img[i + 1], img[i + 2], img[i + 3]]
    }

    #[test]
    fn labels_count_to_nine_then_nine_plus() {
        assert_eq!(label(0), None);
        assert_eq!(label(1).as_deref(), Some("1"));
        assert_eq!(label(9).as_deref(), Some("9"));
        assert_eq!(label(10).as_deref(), Some("9+"));
        assert_eq!(label(4000).as_deref(), Some("9+"));
    }

    #[test]
    fn the_badge_is_a_red_disc_with_white_digits() {
        let mut img = blank();
        draw(&mut img, 64, 64, 0);
        assert!(img.iter().all(|&b| b == 0), "no alarms: icon unchanged");
        draw(&mut img, 64, 64, 1);
        // Outside the disc: untouched; its rim: red; the "1"'s stem (column 2 of the
        // glyph, 3 px per font pixel from x = round(48 - 7.5)): white.
        assert_eq!(px(&img, 20, 20), [0, 0, 0, 0]);
        assert_eq!(px(&img, 48, 36), [218, 54, 51, 255]);
        assert_eq!(px(&img, 47, 48), [255, 255, 255, 255]);
        let mut one = blank();
        let mut seven = blank();
        draw(&mut one, 64, 64, 1);
        draw(&mut seven, 64, 64, 7);
        assert_ne!(one, seven, "each count draws its own digit");
        let mut many = blank();
        draw(&mut many, 64, 64, 12);
        let mut plus = blank();
        draw(&mut plus, 64, 64, 99);
        assert_eq!(many, plus, "everything above 9 is 9+");
        assert_ne!(many, seven);
    }

    #[test]
    fn any_size_is_safe() {
        for (w, h) in [(1, 1), (16, 16), (22, 24), (128, 128)] {
            let mut img = vec![0u8; (w * h * 4) as usize];
            draw(&mut img, w, h, 10);
        }
        draw(&mut [], 64, 64, 3);
    }

    /// Writes the alarm icon with each badge as raw RGBA to `target/tray-badges/` (view
    /// them with `convert -size 64x64 -depth 8 rgba:FILE out.png`).
    #[test]
    fn render_badges_for_people_to_look_at() {
        let icon = image_rgba();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tray-badges");
        std::fs::create_dir_all(&dir).unwrap();
        for n in [0, 1, 2, 5, 8, 9, 10, 123] {
            let mut img = icon.clone();
            draw(&mut img, 64, 64, n);
            std::fs::write(dir.join(format!("alarm-{n}.rgba")), &img).unwrap();
        }
    }

    fn image_rgba() -> Vec<u8> {
        let img = tauri::image::Image::from_bytes(include_bytes!("../../../icons/tray-alarm.png"))
            .unwrap();
        assert_eq!((img.width(), img.height()), (64, 64));
        img.rgba().to_vec()
    }
}
