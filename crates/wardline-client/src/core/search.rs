//! Looking through the history this device holds: search over decrypted
//! messages, and the urgent messages that may still wait for this person's
//! acknowledgement. Both run on the device (the server cannot read a
//! message, so it cannot search one), over the core's state in memory.

use uuid::Uuid;
use wardline_proto::messaging::Priority;

use super::chat::{ChatCore, LocalMessage};

/// Most words a query is split into (the rest are ignored).
pub const MAX_QUERY_WORDS: usize = 8;

/// A message [`ChatCore::search`] found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Found<'a> {
    pub conversation: Uuid,
    pub message: &'a LocalMessage,
    /// Messages after this one in its conversation: a client showing the
    /// latest `n` must show at least `after + 1` to reach it.
    pub after: usize,
}

/// A query's words, lower-cased (Unicode), without empty ones.
fn words(query: &str) -> Vec<String> {
    query
        .split_whitespace()
        .take(MAX_QUERY_WORDS)
        .map(str::to_lowercase)
        .collect()
}

/// What a message can be found by: its text, its attachments' names and the
/// patient a forward names.
fn haystack(m: &LocalMessage) -> String {
    let mut s = m.content.text.to_lowercase();
    for a in &m.content.attachments {
        s.push('\n');
        s.push_str(&a.name.to_lowercase());
    }
    if let Some(p) = m
        .content
        .forwarded
        .as_ref()
        .and_then(|f| f.patient_ref.as_ref())
    {
        s.push('\n');
        s.push_str(&p.to_lowercase());
    }
    s
}

impl ChatCore {
    /// Messages, in every conversation, containing every word of `query`
    /// anywhere (case-insensitive, so "trop" finds "Troponin"), newest first,
    /// at most `limit`. Recalled and expired messages have no content left
    /// and are never found. An empty query finds nothing.
    pub fn search(&self, query: &str, limit: usize) -> Vec<Found<'_>> {
        let words = words(query);
        if words.is_empty() || limit == 0 {
            return Vec::new();
        }
        let mut found: Vec<Found> = Vec::new();
        for c in self.conversations.values() {
            let n = c.messages.len();
            for (i, m) in c.messages.iter().enumerate().rev() {
                if m.recalled_at.is_some() {
                    continue;
                }
                let hay = haystack(m);
                if words.iter().all(|w| hay.contains(w.as_str())) {
                    found.push(Found {
                        conversation: c.id,
                        message: m,
                        after: n - 1 - i,
                    });
                }
            }
        }
        found.sort_by_key(|f| std::cmp::Reverse((f.message.sent_at, f.message.id)));
        found.truncate(limit);
        found
    }

    /// Where message `id` is on this device: its conversation, and how many
    /// messages follow it there (as [`Found::after`]); none when it is not
    /// here (not arrived yet, expired, or never this device's).
    pub fn locate(&self, id: Uuid) -> Option<(Uuid, usize)> {
        self.conversations.values().find_map(|c| {
            let i = c.messages.iter().rposition(|m| m.id == id)?;
            Some((c.id, c.messages.len() - 1 - i))
        })
    }

    /// Urgent and STAT messages from others sent at or after `since`, not
    /// recalled, newest first: those that may wait for this person's
    /// acknowledgement (the server says whether each still does).
    pub fn urgent_from_others(&self, since: i64) -> Vec<(Uuid, &LocalMessage)> {
        let mut out: Vec<(Uuid, &LocalMessage)> = self
            .conversations
            .values()
            .flat_map(|c| {
                c.messages
                    .iter()
                    .rev()
                    .take_while(move |m| m.sent_at >= since)
                    .map(move |m| (c.id, m))
            })
            .filter(|(_, m)| !m.mine && m.priority != Priority::Routine && m.recalled_at.is_none())
            .collect();
        out.sort_by_key(|(_, m)| std::cmp::Reverse(m.sent_at));
        out
    }

    /// This person's own urgent and STAT messages sent at or after `since`,
    /// not recalled, newest first: those whose escalation they follow.
    pub fn urgent_sent(&self, since: i64) -> Vec<(Uuid, &LocalMessage)> {
        let mut out: Vec<(Uuid, &LocalMessage)> = self
            .conversations
            .values()
            .flat_map(|c| {
                c.messages
                    .iter()
                    .rev()
                    .take_while(move |m| m.sent_at >= since)
                    .map(move |m| (c.id, m))
            })
            .filter(|(_, m)| m.mine && m.priority != Priority::Routine && m.recalled_at.is_none())
            .collect();
        out.sort_by_key(|(_, m)| std::cmp::Reverse(m.sent_at));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{AttachmentKind, AttachmentRef, LocalConversation, MessageContent};
    use wardline_proto::messaging::B64;

    fn msg(text: &str, at: i64, mine: bool, priority: Priority) -> LocalMessage {
        LocalMessage {
            id: Uuid::new_v4(),
            sender_user: Uuid::new_v4(),
            sender_device: Uuid::new_v4(),
            content: MessageContent::text(text),
            priority,
            sent_at: at,
            mine,
            expires_at: None,
            recalled_at: None,
        }
    }

    fn core_with(convs: Vec<Vec<LocalMessage>>) -> (ChatCore, Vec<Uuid>) {
        let mut core = ChatCore::new(Uuid::new_v4(), Uuid::new_v4()).unwrap();
        let mut ids = Vec::new();
        for messages in convs {
            let id = Uuid::new_v4();
            ids.push(id);
            core.conversations.insert(
                id,
                LocalConversation {
                    id,
                    messages,
                    ..Default::default()
                },
            );
        }
        (core, ids)
    }

    #[test]
    fn finds_partial_words_in_any_case_across_conversations_newest_first() {
        let (mut core, ids) = core_with(vec![
            vec![
                msg("Troponin rising in bed 4", 100, false, Priority::Stat),
                msg("ok", 101, true, Priority::Routine),
            ],
            vec![msg(
                "repeat TROPONIN at 14:00, bed 4",
                200,
                true,
                Priority::Routine,
            )],
        ]);
        let hits = core.search("trop BED", 10);
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].conversation, ids[1]);
        assert_eq!(hits[0].after, 0);
        assert_eq!(hits[1].conversation, ids[0]);
        assert_eq!(hits[1].after, 1, "one message after it in its thread");
        // Every word must be there.
        assert!(core.search("troponin potassium", 10).is_empty());
        assert!(core.search("   ", 10).is_empty());
        assert_eq!(core.search("troponin", 1).len(), 1);
        // Non-ASCII folds too.
        core.conversations.get_mut(&ids[0]).unwrap().messages[1]
            .content
            .text = "Ödem am Knöchel".into();
        assert_eq!(core.search("ödem", 10).len(), 1);
        // A recalled message has nothing left to find.
        core.conversations.get_mut(&ids[1]).unwrap().messages[0].recalled_at = Some(300);
        assert_eq!(core.search("troponin", 10).len(), 1);
    }

    #[test]
    fn finds_attachments_by_name() {
        let mut m = msg("see attached", 10, false, Priority::Routine);
        m.content.attachments.push(AttachmentRef {
            id: Uuid::new_v4(),
            kind: AttachmentKind::File,
            name: "ECG-bed4.pdf".into(),
            mime: "application/pdf".into(),
            size: 10,
            key: B64(vec![0; 32]),
        });
        let (core, _) = core_with(vec![vec![m]]);
        assert_eq!(core.search("ecg", 10).len(), 1);
    }

    #[test]
    fn urgent_messages_from_others_and_mine_since_a_time() {
        let (core, ids) = core_with(vec![vec![
            msg("old stat", 50, false, Priority::Stat),
            msg("routine", 150, false, Priority::Routine),
            msg("urgent", 160, false, Priority::Urgent),
            msg("my stat", 170, true, Priority::Stat),
        ]]);
        let theirs = core.urgent_from_others(100);
        assert_eq!(theirs.len(), 1);
        assert_eq!(
            (theirs[0].0, theirs[0].1.content.text.as_str()),
            (ids[0], "urgent")
        );
        let mine = core.urgent_sent(100);
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].1.content.text, "my stat");
        let old = core.conversations[&ids[0]].messages[0].id;
        assert_eq!(core.locate(old), Some((ids[0], 3)));
        assert_eq!(core.locate(Uuid::new_v4()), None);
    }
}
