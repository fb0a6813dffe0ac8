//! Keyboard shortcuts as the user writes them in the config (`"Super+Y"`, `"Ctrl+Alt+Space"`)
//! and as the desktop takes them: an XDG shortcuts-spec trigger for the GlobalShortcuts portal
//! (`"LOGO+y"`) and an X11 keysym for a key grab. No display is touched here; the tray does
//! the binding.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The modifiers of a shortcut. NumLock and CapsLock are never part of one: a shortcut works
/// whatever their state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Modifiers {
    /// Control.
    pub ctrl: bool,
    /// Alt (Mod1 on X11).
    pub alt: bool,
    /// Shift.
    pub shift: bool,
    /// The Super / Windows / Meta key (the spec's `LOGO`, Mod4 on most X11 keymaps).
    pub logo: bool,
}

/// A key without modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// `A`–`Z` (stored upper case; the keysym is the lower-case one, as on a keyboard).
    Letter(char),
    /// `0`–`9`.
    Digit(char),
    /// `F1`–`F24`.
    F(u8),
    /// A named key.
    Named(NamedKey),
}

/// The named keys a shortcut may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamedKey {
    /// The space bar.
    Space,
    /// Return / Enter.
    Return,
    /// Tab.
    Tab,
    /// Escape.
    Escape,
    /// Insert.
    Insert,
    /// Delete.
    Delete,
    /// Home.
    Home,
    /// End.
    End,
    /// Page Up.
    PageUp,
    /// Page Down.
    PageDown,
    /// Cursor left.
    Left,
    /// Cursor right.
    Right,
    /// Cursor up.
    Up,
    /// Cursor down.
    Down,
    /// Print Screen.
    Print,
    /// Pause.
    Pause,
}

impl NamedKey {
    const ALL: [NamedKey; 16] = [
        NamedKey::Space,
        NamedKey::Return,
        NamedKey::Tab,
        NamedKey::Escape,
        NamedKey::Insert,
        NamedKey::Delete,
        NamedKey::Home,
        NamedKey::End,
        NamedKey::PageUp,
        NamedKey::PageDown,
        NamedKey::Left,
        NamedKey::Right,
        NamedKey::Up,
        NamedKey::Down,
        NamedKey::Print,
        NamedKey::Pause,
    ];

    /// How the config spells it (and how it is shown).
    pub fn as_str(self) -> &'static str {
        match self {
            NamedKey::Space => "Space",
            NamedKey::Return => "Return",
            NamedKey::Tab => "Tab",
            NamedKey::Escape => "Escape",
            NamedKey::Insert => "Insert",
            NamedKey::Delete => "Delete",
            NamedKey::Home => "Home",
            NamedKey::End => "End",
            NamedKey::PageUp => "PageUp",
            NamedKey::PageDown => "PageDown",
            NamedKey::Left => "Left",
            NamedKey::Right => "Right",
            NamedKey::Up => "Up",
            NamedKey::Down => "Down",
            NamedKey::Print => "Print",
            NamedKey::Pause => "Pause",
        }
    }

    /// The xkbcommon keysym name (`XKB_KEY_*` without the prefix).
    fn xkb_name(self) -> &'static str {
        match self {
            NamedKey::Space => "space",
            NamedKey::Return => "Return",
            NamedKey::Tab => "Tab",
            NamedKey::Escape => "Escape",
            NamedKey::Insert => "Insert",
            NamedKey::Delete => "Delete",
            NamedKey::Home => "Home",
            NamedKey::End => "End",
            NamedKey::PageUp => "Page_Up",
            NamedKey::PageDown => "Page_Down",
            NamedKey::Left => "Left",
            NamedKey::Right => "Right",
            NamedKey::Up => "Up",
            NamedKey::Down => "Down",
            NamedKey::Print => "Print",
            NamedKey::Pause => "Pause",
        }
    }

    /// The X11 keysym (X11/keysymdef.h).
    fn keysym(self) -> u32 {
        match self {
            NamedKey::Space => 0x0020,
            NamedKey::Return => 0xff0d,
            NamedKey::Tab => 0xff09,
            NamedKey::Escape => 0xff1b,
            NamedKey::Insert => 0xff63,
            NamedKey::Delete => 0xffff,
            NamedKey::Home => 0xff50,
            NamedKey::End => 0xff57,
            NamedKey::PageUp => 0xff55,
            NamedKey::PageDown => 0xff56,
            NamedKey::Left => 0xff51,
            NamedKey::Right => 0xff53,
            NamedKey::Up => 0xff52,
            NamedKey::Down => 0xff54,
            NamedKey::Print => 0xff61,
            NamedKey::Pause => 0xff13,
        }
    }

    /// Other spellings people write.
    fn from_alias(s: &str) -> Option<NamedKey> {
        let lower = s.to_ascii_lowercase();
        let found = match lower.as_str() {
            "enter" => NamedKey::Return,
            "esc" => NamedKey::Escape,
            "ins" => NamedKey::Insert,
            "del" => NamedKey::Delete,
            "page_up" | "pgup" => NamedKey::PageUp,
            "page_down" | "pgdn" => NamedKey::PageDown,
            "printscreen" | "prtsc" => NamedKey::Print,
            _ => {
                return NamedKey::ALL
                    .into_iter()
                    .find(|k| k.as_str().eq_ignore_ascii_case(s));
            }
        };
        Some(found)
    }
}

impl Key {
    /// The X11 keysym a key grab looks for.
    pub fn keysym(self) -> u32 {
        match self {
            // Latin-1 keysyms are the characters' codes; letters grab by their lower-case sym.
            Key::Letter(c) => u32::from(c.to_ascii_lowercase()),
            Key::Digit(c) => u32::from(c),
            // XK_F1 is 0xffbe and F1..F35 are consecutive.
            Key::F(n) => 0xffbe + u32::from(n) - 1,
            Key::Named(k) => k.keysym(),
        }
    }

    /// The key's xkbcommon name, as the shortcuts spec wants it (`y`, `5`, `F5`, `space`).
    pub fn xkb_name(self) -> String {
        match self {
            Key::Letter(c) => c.to_ascii_lowercase().to_string(),
            Key::Digit(c) => c.to_string(),
            Key::F(n) => format!("F{n}"),
            Key::Named(k) => k.xkb_name().to_owned(),
        }
    }

    /// Keys that type nothing and may be bound without a modifier.
    fn stands_alone(self) -> bool {
        matches!(
            self,
            Key::F(_) | Key::Named(NamedKey::Print) | Key::Named(NamedKey::Pause)
        )
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Letter(c) | Key::Digit(c) => write!(f, "{c}"),
            Key::F(n) => write!(f, "F{n}"),
            Key::Named(k) => f.write_str(k.as_str()),
        }
    }
}

/// A key with its modifiers, e.g. `Super+Y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Accelerator {
    /// What must be held.
    pub modifiers: Modifiers,
    /// What is pressed.
    pub key: Key,
}

/// Why a shortcut was not understood; the message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AcceleratorError(String);

const KEYS_HELP: &str = "a letter, a digit, F1–F24, Space, Return, Tab, Escape, Insert, \
                         Delete, Home, End, PageUp, PageDown, Left, Right, Up, Down, Print or \
                         Pause";

impl FromStr for Accelerator {
    type Err = AcceleratorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| AcceleratorError(format!("{s:?}: {why}"));
        let parts: Vec<&str> = s.split('+').map(str::trim).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad(
                "write modifiers and one key joined by `+`, e.g. \"Super+Y\" or \
                 \"Ctrl+Alt+Space\" (the `+` key itself cannot be bound)"
                    .into(),
            ));
        }
        let Some((key, held)) = parts.split_last() else {
            return Err(bad("empty shortcut".into()));
        };
        let mut modifiers = Modifiers::default();
        for m in held {
            let slot = match m.to_ascii_lowercase().as_str() {
                "ctrl" | "control" => &mut modifiers.ctrl,
                "alt" => &mut modifiers.alt,
                "shift" => &mut modifiers.shift,
                "super" | "logo" | "meta" | "win" | "windows" | "cmd" => &mut modifiers.logo,
                _ => {
                    return Err(bad(format!(
                        "{m:?} is not a modifier (Ctrl, Alt, Shift or Super), or the key is \
                         not last"
                    )));
                }
            };
            if std::mem::replace(slot, true) {
                return Err(bad(format!("{m:?} is written twice")));
            }
        }
        let key = parse_key(key).ok_or_else(|| {
            if Modifiers::default() == modifiers && parse_modifier_name(key) {
                bad("a modifier alone is not a shortcut: add a key, e.g. \"Super+Y\"".into())
            } else {
                bad(format!("unknown key {key:?}: use {KEYS_HELP}"))
            }
        })?;
        if !(modifiers.ctrl || modifiers.alt || modifiers.logo || key.stands_alone()) {
            return Err(bad(format!(
                "{key} needs Ctrl, Alt or Super with it: a global shortcut takes its keys from \
                 every program, so it could no longer be typed"
            )));
        }
        Ok(Accelerator { modifiers, key })
    }
}

fn parse_modifier_name(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "ctrl" | "control" | "alt" | "shift" | "super" | "logo" | "meta" | "win"
    )
}

fn parse_key(s: &str) -> Option<Key> {
    let mut chars = s.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return match c {
            'a'..='z' | 'A'..='Z' => Some(Key::Letter(c.to_ascii_uppercase())),
            '0'..='9' => Some(Key::Digit(c)),
            _ => None,
        };
    }
    if let Some(n) = s
        .strip_prefix(['F', 'f'])
        .and_then(|n| n.parse::<u8>().ok())
        .filter(|n| (1..=24).contains(n))
    {
        return Some(Key::F(n));
    }
    NamedKey::from_alias(s).map(Key::Named)
}

impl Accelerator {
    /// The trigger in the XDG shortcuts spec's syntax, for the GlobalShortcuts portal's
    /// `preferred_trigger`: modifiers `CTRL`, `ALT`, `SHIFT`, `LOGO`, then the keysym name,
    /// joined by `+` (`"LOGO+y"`).
    pub fn xdg_trigger(&self) -> String {
        let m = self.modifiers;
        let mut parts: Vec<String> = [
            (m.ctrl, "CTRL"),
            (m.alt, "ALT"),
            (m.shift, "SHIFT"),
            (m.logo, "LOGO"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| name.to_owned())
        .collect();
        parts.push(self.key.xkb_name());
        parts.join("+")
    }
}

impl fmt::Display for Accelerator {
    /// The canonical spelling: `Ctrl+Alt+Shift+Super+Key`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.modifiers;
        for (on, name) in [
            (m.ctrl, "Ctrl"),
            (m.alt, "Alt"),
            (m.shift, "Shift"),
            (m.logo, "Super"),
        ] {
            if on {
                write!(f, "{name}+")?;
            }
        }
        write!(f, "{}", self.key)
    }
}

impl Serialize for Accelerator {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Accelerator {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// What `[shortcut] toggle_chat` says: a shortcut, or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// No global shortcut.
    Off,
    /// This shortcut opens and closes the chat.
    On(Accelerator),
}

impl Binding {
    /// The shortcut, unless off.
    pub fn accelerator(self) -> Option<Accelerator> {
        match self {
            Binding::Off => None,
            Binding::On(a) => Some(a),
        }
    }
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Binding::Off => f.write_str("off"),
            Binding::On(a) => a.fmt(f),
        }
    }
}

impl FromStr for Binding {
    type Err = AcceleratorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("off") {
            return Ok(Binding::Off);
        }
        s.parse().map(Binding::On)
    }
}

impl Serialize for Binding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Binding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The default `toggle_chat`: Super+Y. Super-combinations are rarely taken by programs (they
/// belong to the desktop), and no common desktop binds Super+Y.
pub const DEFAULT_TOGGLE_CHAT: Accelerator = Accelerator {
    modifiers: Modifiers {
        ctrl: false,
        alt: false,
        shift: false,
        logo: true,
    },
    key: Key::Letter('Y'),
};

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Accelerator {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn accelerators_parse_to_keysyms_and_triggers() {
        let a = parse("Super+Y");
        assert_eq!(a, DEFAULT_TOGGLE_CHAT);
        assert_eq!(a.key.keysym(), u32::from(b'y'));
        assert_eq!(a.xdg_trigger(), "LOGO+y");
        assert_eq!(a.to_string(), "Super+Y");

        let a = parse(" alt + ctrl + space ");
        assert_eq!(a.to_string(), "Ctrl+Alt+Space");
        assert_eq!(a.xdg_trigger(), "CTRL+ALT+space");
        assert_eq!(a.key.keysym(), 0x20);

        assert_eq!(parse("F12").key.keysym(), 0xffc9);
        assert_eq!(parse("F1").key.keysym(), 0xffbe);
        assert_eq!(parse("Meta+Shift+PgUp").xdg_trigger(), "SHIFT+LOGO+Page_Up");
        assert_eq!(parse("Ctrl+7").key.keysym(), u32::from(b'7'));
        assert_eq!(parse("win+esc").to_string(), "Super+Escape");
    }

    #[test]
    fn bad_accelerators_say_what_to_write() {
        for (s, says) in [
            ("Y", "needs Ctrl, Alt or Super"),
            ("Shift+Y", "needs Ctrl, Alt or Super"),
            ("Super+Foo", "unknown key \"Foo\""),
            ("Hyper+Y", "\"Hyper\" is not a modifier"),
            ("Y+Super", "\"Y\" is not a modifier"),
            ("Super+Super+Y", "written twice"),
            ("Ctrl++", "joined by `+`"),
            ("", "joined by `+`"),
            ("Super", "a modifier alone"),
            ("Super+F25", "unknown key \"F25\""),
        ] {
            let err = s.parse::<Accelerator>().expect_err(s).to_string();
            assert!(err.contains(says), "{s:?}: {err}");
            assert!(
                err.starts_with(&format!("{s:?}")),
                "quotes the input: {err}"
            );
        }
    }

    #[test]
    fn display_round_trips_and_off_is_a_binding() {
        for s in ["Super+Y", "Ctrl+Alt+Shift+Super+F5", "Ctrl+Return", "Pause"] {
            assert_eq!(parse(s).to_string(), s);
            assert_eq!(parse(&parse(s).to_string()), parse(s));
        }
        assert_eq!("off".parse::<Binding>(), Ok(Binding::Off));
        assert_eq!(
            "Ctrl+Alt+Y".parse::<Binding>().map(Binding::accelerator),
            Ok(Some(parse("Ctrl+Alt+Y")))
        );
    }
}
