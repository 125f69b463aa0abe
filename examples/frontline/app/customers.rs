//! The customer book: Frontline's Customer objects, read from JSON at startup.
//!
//! The built-in sample, `customers.json` beside the example, is also the format of a
//! `FRONTLINE_CUSTOMERS_FILE`: an array of customers, each with `customer_id`,
//! `display_name`, `channels`, optional `links`, `avatar` and `details`, and the `worker`
//! (Frontline user identity) its conversations are routed to. Its phone numbers are in the
//! 555-01xx range, which is reserved for fiction.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// The sample book, in the order the customers list shows it.
pub(crate) const SAMPLE_JSON: &str = include_str!("../customers.json");

/// The channel types Frontline knows.
const CHANNEL_TYPES: [&str; 4] = ["sms", "whatsapp", "chat", "email"];

/// One way to reach a customer: `sms`, `whatsapp`, `chat` or `email`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Channel {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) value: String,
}

/// A link shown on the customer's page in the Frontline app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Link {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) value: String,
    pub(crate) display_name: String,
}

/// The free-form details block of a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Details {
    pub(crate) title: String,
    pub(crate) content: String,
}

/// A customer, serialized as Frontline's Customer object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Customer {
    pub(crate) customer_id: String,
    pub(crate) display_name: String,
    pub(crate) channels: Vec<Channel>,
    #[serde(default)]
    pub(crate) links: Vec<Link>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) avatar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) details: Option<Details>,
    /// The worker (Frontline user identity) that conversations with this customer are
    /// routed to.
    #[serde(skip_serializing)]
    pub(crate) worker: String,
}

impl Customer {
    /// Whether one of the customer's channels has this address (`+1…`, `whatsapp:+1…`,
    /// a chat identity or an email address).
    pub(crate) fn has_address(&self, address: &str) -> bool {
        self.channels.iter().any(|c| c.value == address)
    }
}

/// The entry in the customers list: a short form of [`Customer`].
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CustomerSummary<'a> {
    pub(crate) display_name: &'a str,
    pub(crate) customer_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) avatar: Option<&'a str>,
}

impl<'a> From<&'a Customer> for CustomerSummary<'a> {
    fn from(c: &'a Customer) -> Self {
        Self {
            display_name: &c.display_name,
            customer_id: &c.customer_id,
            avatar: c.avatar.as_deref(),
        }
    }
}

/// Reads a customer book: a JSON array of customers with unique, non-empty ids, names
/// and workers, and channels of the types Frontline knows. The error is one line.
pub(crate) fn parse_book(json: &str) -> Result<Vec<Customer>, String> {
    let book: Vec<Customer> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut ids = HashSet::new();
    for (i, customer) in book.iter().enumerate() {
        let at = format!(
            "customer {} (customer_id {:?})",
            i + 1,
            customer.customer_id
        );
        for (field, value) in [
            ("customer_id", &customer.customer_id),
            ("display_name", &customer.display_name),
            ("worker", &customer.worker),
        ] {
            if value.trim().is_empty() {
                return Err(format!("{at}: {field} is empty"));
            }
        }
        if !ids.insert(customer.customer_id.as_str()) {
            return Err(format!("{at}: the customer_id is used twice"));
        }
        if let Some(channel) = customer
            .channels
            .iter()
            .find(|c| !CHANNEL_TYPES.contains(&c.kind.as_str()))
        {
            return Err(format!(
                "{at}: unknown channel type {:?} (expected one of {})",
                channel.kind,
                CHANNEL_TYPES.join(", ")
            ));
        }
    }
    Ok(book)
}

/// The built-in sample book.
pub(crate) fn sample() -> Vec<Customer> {
    parse_book(SAMPLE_JSON).expect("the sample customer book is valid")
}

/// A page of the customers list: the customers whose display name contains `query`
/// (ignoring case), after the customer `anchor` (the last id of the previous page), at
/// most `page_size` of them. An anchor that is not in the book gives an empty page.
pub(crate) fn page<'a>(
    book: &'a [Customer],
    query: Option<&str>,
    anchor: Option<&str>,
    page_size: usize,
) -> impl Iterator<Item = &'a Customer> {
    let start = match anchor {
        None => 0,
        Some(anchor) => book
            .iter()
            .position(|c| c.customer_id == anchor)
            .map_or(book.len(), |i| i + 1),
    };
    let query = query.map(str::to_lowercase);
    book[start..]
        .iter()
        .filter(move |c| {
            query
                .as_deref()
                .is_none_or(|q| c.display_name.to_lowercase().contains(q))
        })
        .take(page_size)
}
