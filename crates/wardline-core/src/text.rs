//! Rules for text every entry point stores: the control characters no stored
//! string may hold.

/// Whether `c` may not appear in any text the API stores: C0 controls other
/// than tab, line feed and carriage return, DEL and the C1 controls. NUL in
/// particular: PostgreSQL refuses it in text (SQLite stores it), so letting it
/// through made the engines hold different data and failed whole audit
/// batches on PostgreSQL.
pub fn forbidden_control(c: u32) -> bool {
    (c < 0x20 && !matches!(c, 0x09 | 0x0a | 0x0d)) || (0x7f..=0x9f).contains(&c)
}
