//! The sample customer book, held in memory.
//!
//! Phone numbers are in the 555-01xx range, which is reserved for fiction.

use serde::Serialize;

/// One way to reach a customer: `sms`, `whatsapp`, `chat` or `email`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Channel {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) value: &'static str,
}

/// A link shown on the customer's page in the Frontline app.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Link {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) value: &'static str,
    pub(crate) display_name: &'static str,
}

/// The free-form details block of a customer.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Details {
    pub(crate) title: &'static str,
    pub(crate) content: &'static str,
}

/// A customer, serialized as Frontline's Customer object.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Customer {
    pub(crate) customer_id: &'static str,
    pub(crate) display_name: &'static str,
    pub(crate) channels: &'static [Channel],
    pub(crate) links: &'static [Link],
    pub(crate) avatar: &'static str,
    pub(crate) details: Details,
    /// The worker (Frontline user identity) that conversations with this customer are
    /// routed to.
    #[serde(skip)]
    pub(crate) worker: &'static str,
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
pub(crate) struct CustomerSummary {
    pub(crate) display_name: &'static str,
    pub(crate) customer_id: &'static str,
    pub(crate) avatar: &'static str,
}

impl From<&Customer> for CustomerSummary {
    fn from(c: &Customer) -> Self {
        Self {
            display_name: c.display_name,
            customer_id: c.customer_id,
            avatar: c.avatar,
        }
    }
}

/// The sample book, in the order the customers list shows it.
pub(crate) const SAMPLE_CUSTOMERS: &[Customer] = &[
    Customer {
        customer_id: "1",
        display_name: "Ana Souza",
        channels: &[
            Channel {
                kind: "sms",
                value: "+12025550111",
            },
            Channel {
                kind: "whatsapp",
                value: "whatsapp:+12025550111",
            },
            Channel {
                kind: "email",
                value: "ana.souza@example.com",
            },
        ],
        links: &[Link {
            kind: "LinkedIn",
            value: "https://www.linkedin.com/in/example-ana-souza",
            display_name: "Professional profile",
        }],
        avatar: "https://example.com/avatars/ana-souza.png",
        details: Details {
            title: "Information",
            content: "Status: Active\n\nPlan: Business\n\nCustomer since: 2019",
        },
        worker: "alice@example.com",
    },
    Customer {
        customer_id: "2",
        display_name: "Benjamin Carter",
        channels: &[
            Channel {
                kind: "sms",
                value: "+12025550122",
            },
            Channel {
                kind: "chat",
                value: "benjamin.carter",
            },
        ],
        links: &[Link {
            kind: "Website",
            value: "https://carter-hardware.example.com",
            display_name: "Carter Hardware",
        }],
        avatar: "https://example.com/avatars/benjamin-carter.png",
        details: Details {
            title: "Information",
            content: "Status: Active\n\nPlan: Starter\n\nOpen ticket: delivery date",
        },
        worker: "alice@example.com",
    },
    Customer {
        customer_id: "3",
        display_name: "Chloé Martin",
        channels: &[
            Channel {
                kind: "sms",
                value: "+12025550133",
            },
            Channel {
                kind: "whatsapp",
                value: "whatsapp:+12025550133",
            },
        ],
        links: &[
            Link {
                kind: "Facebook",
                value: "https://www.facebook.com/example.chloe.martin",
                display_name: "Social media profile",
            },
            Link {
                kind: "CRM",
                value: "https://crm.example.com/accounts/3",
                display_name: "Account in the CRM",
            },
        ],
        avatar: "https://example.com/avatars/chloe-martin.png",
        details: Details {
            title: "Information",
            content: "Status: Prospect\n\nInterested in: Premium plan",
        },
        worker: "bob@example.com",
    },
    Customer {
        customer_id: "4",
        display_name: "Dmitri Volkov",
        channels: &[
            Channel {
                kind: "sms",
                value: "+12025550144",
            },
            Channel {
                kind: "chat",
                value: "dmitri.volkov",
            },
        ],
        links: &[Link {
            kind: "CRM",
            value: "https://crm.example.com/accounts/4",
            display_name: "Account in the CRM",
        }],
        avatar: "https://example.com/avatars/dmitri-volkov.png",
        details: Details {
            title: "Information",
            content: "Status: Active\n\nPlan: Business\n\nRenewal: next month",
        },
        worker: "bob@example.com",
    },
    Customer {
        customer_id: "5",
        display_name: "Emily Zhang",
        channels: &[
            Channel {
                kind: "sms",
                value: "+12025550155",
            },
            Channel {
                kind: "whatsapp",
                value: "whatsapp:+12025550155",
            },
            Channel {
                kind: "chat",
                value: "emily.zhang",
            },
        ],
        links: &[Link {
            kind: "Website",
            value: "https://zhang-design.example.com",
            display_name: "Zhang Design Studio",
        }],
        avatar: "https://example.com/avatars/emily-zhang.png",
        details: Details {
            title: "Information",
            content: "Status: Active\n\nPlan: Premium\n\nPrefers: WhatsApp",
        },
        worker: "alice@example.com",
    },
    Customer {
        customer_id: "6",
        display_name: "Farah Haddad",
        channels: &[
            Channel {
                kind: "sms",
                value: "+12025550166",
            },
            Channel {
                kind: "email",
                value: "farah.haddad@example.com",
            },
        ],
        links: &[],
        avatar: "https://example.com/avatars/farah-haddad.png",
        details: Details {
            title: "Information",
            content: "Status: Inactive\n\nLast order: two years ago",
        },
        worker: "carol@example.com",
    },
    Customer {
        customer_id: "7",
        display_name: "Gabriel Okafor",
        channels: &[
            Channel {
                kind: "whatsapp",
                value: "whatsapp:+12025550177",
            },
            Channel {
                kind: "chat",
                value: "gabriel.okafor",
            },
        ],
        links: &[Link {
            kind: "LinkedIn",
            value: "https://www.linkedin.com/in/example-gabriel-okafor",
            display_name: "Professional profile",
        }],
        avatar: "https://example.com/avatars/gabriel-okafor.png",
        details: Details {
            title: "Information",
            content: "Status: Active\n\nPlan: Starter",
        },
        worker: "carol@example.com",
    },
];

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
