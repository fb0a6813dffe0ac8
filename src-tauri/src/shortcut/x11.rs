//! The shortcut as an X11 passive key grab on the root window (x11rb, pure Rust: no Xlib).
//!
//! X11 compares a grab's modifiers exactly, so NumLock or CapsLock being on would defeat it:
//! the key is grabbed four times, with and without each. The modifier bits of NumLock and Super
//! are looked up in the server's modifier map rather than assumed (Super is Mod4 on most
//! keymaps, but not all). A held key repeats as release/press pairs with the same timestamp;
//! those repeats are ignored, so holding the shortcut toggles once.

use std::sync::Arc;

use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{ConnectionExt, GrabMode, Keycode, ModMask};
use x11rb::rust_connection::RustConnection;
use yollayah_core::shortcut::Accelerator;

use crate::error::{Error, Result};

const XK_NUM_LOCK: u32 = 0xff7f;
const XK_SUPER_L: u32 = 0xffeb;
const XK_SUPER_R: u32 = 0xffec;
const XK_ALT_L: u32 = 0xffe9;
const XK_ALT_R: u32 = 0xffea;

fn x11_err(what: &str, err: impl std::fmt::Display) -> Error {
    Error::Shortcut(format!("X11 key grab: {what}: {err}"))
}

/// What the server's keymap says about our key and the modifiers.
struct Keymap {
    /// Keycodes that produce the key's keysym (usually one).
    codes: Vec<Keycode>,
    num_lock: u16,
    super_: u16,
    alt: u16,
}

fn keymap(conn: &RustConnection, keysym: u32) -> Result<Keymap> {
    let setup = conn.setup();
    let (min, max) = (setup.min_keycode, setup.max_keycode);
    let map = conn
        .get_keyboard_mapping(min, max - min + 1)
        .map_err(|e| x11_err("keyboard map", e))?
        .reply()
        .map_err(|e| x11_err("keyboard map", e))?;
    let per = usize::from(map.keysyms_per_keycode.max(1));
    let syms_of = |code: Keycode| -> &[u32] {
        let start = usize::from(code - min) * per;
        map.keysyms.get(start..start + per).unwrap_or_default()
    };
    let codes_for = |wanted: &[u32]| -> Vec<Keycode> {
        (min..=max)
            .filter(|&c| syms_of(c).iter().any(|s| wanted.contains(s)))
            .collect()
    };
    // Letters: the keymap lists `y` and `Y` on one key; look for either.
    let upper = char::from_u32(keysym)
        .filter(char::is_ascii_lowercase)
        .map(|c| u32::from(c.to_ascii_uppercase()));
    let mut wanted = vec![keysym];
    wanted.extend(upper);
    let codes = codes_for(&wanted);
    if codes.is_empty() {
        return Err(Error::Shortcut(format!(
            "X11 key grab: no key of this keyboard layout types keysym {keysym:#x}"
        )));
    }
    let mods = conn
        .get_modifier_mapping()
        .map_err(|e| x11_err("modifier map", e))?
        .reply()
        .map_err(|e| x11_err("modifier map", e))?;
    let per_mod = usize::from(mods.keycodes_per_modifier());
    // The modifier bit (1 << row) whose row holds a key producing one of `syms`.
    let bit_of = |syms: &[u32], fallback: ModMask| -> u16 {
        let codes = codes_for(syms);
        mods.keycodes
            .chunks(per_mod.max(1))
            .position(|row| row.iter().any(|c| *c != 0 && codes.contains(c)))
            .and_then(|row| u16::try_from(row).ok())
            .map_or(u16::from(fallback), |row| 1 << row)
    };
    Ok(Keymap {
        codes,
        num_lock: bit_of(&[XK_NUM_LOCK], ModMask::M2),
        super_: bit_of(&[XK_SUPER_L, XK_SUPER_R], ModMask::M4),
        alt: bit_of(&[XK_ALT_L, XK_ALT_R], ModMask::M1),
    })
}

/// Grabs `accel` on the default display's root window and calls `on_press` on a thread of its
/// own at each press. Fails when there is no display or another program holds the same grab.
pub fn grab(accel: Accelerator, on_press: Arc<dyn Fn() + Send + Sync>) -> Result<()> {
    let (conn, screen) = RustConnection::connect(None).map_err(|e| x11_err("connecting", e))?;
    let root = conn
        .setup()
        .roots
        .get(screen)
        .map(|s| s.root)
        .ok_or_else(|| x11_err("connecting", "no such screen"))?;
    let map = keymap(&conn, accel.key.keysym())?;
    let m = accel.modifiers;
    let mut mods: u16 = 0;
    for (on, bit) in [
        (m.ctrl, u16::from(ModMask::CONTROL)),
        (m.shift, u16::from(ModMask::SHIFT)),
        (m.alt, map.alt),
        (m.logo, map.super_),
    ] {
        if on {
            mods |= bit;
        }
    }
    let lock = u16::from(ModMask::LOCK);
    let ignored = [0, map.num_lock, lock, map.num_lock | lock];
    for &code in &map.codes {
        for extra in ignored {
            conn.grab_key(
                false,
                root,
                ModMask::from(mods | extra),
                code,
                GrabMode::ASYNC,
                GrabMode::ASYNC,
            )
            .map_err(|e| x11_err("grabbing", e))?
            .check()
            .map_err(|e| {
                Error::Shortcut(format!(
                    "{accel} is already taken by another program (X11 grab refused: {e})"
                ))
            })?;
        }
    }
    conn.flush().map_err(|e| x11_err("flushing", e))?;
    let locks = map.num_lock | lock;
    std::thread::Builder::new()
        .name("x11-shortcut".into())
        .spawn(move || listen(&conn, &map.codes, mods, locks, &*on_press))
        .map_err(|e| Error::io("starting the X11 shortcut thread", e))?;
    Ok(())
}

fn listen(
    conn: &RustConnection,
    codes: &[Keycode],
    mods: u16,
    locks: u16,
    on_press: &(dyn Fn() + Send + Sync),
) {
    let mut last_release = None;
    loop {
        let event = match conn.wait_for_event() {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(%err, "X11 connection lost; the global shortcut stops working");
                return;
            }
        };
        match event {
            Event::KeyPress(e) if codes.contains(&e.detail) => {
                // The modifier bits only (not the mouse buttons), locks aside.
                let held = u16::from(e.state) & 0xff & !locks;
                if held == mods && last_release != Some(e.time) {
                    on_press();
                }
            }
            Event::KeyRelease(e) if codes.contains(&e.detail) => last_release = Some(e.time),
            _ => {}
        }
    }
}
