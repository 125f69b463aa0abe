//! Message templates, with `{{Name}}` (the customer) and `{{Author}}` (the worker).

use serde::Serialize;

/// A category of templates in the Frontline app.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Category {
    pub(crate) display_name: &'static str,
    pub(crate) templates: Vec<Template>,
}

/// One template, with its placeholders filled in.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Template {
    pub(crate) content: String,
    /// Whether the text is an approved WhatsApp template, so it can open a conversation
    /// outside WhatsApp's 24-hour window.
    #[serde(rename = "whatsAppApproved")]
    pub(crate) whatsapp_approved: bool,
}

/// `(category, [(text, whatsapp_approved)])`
const TEMPLATES: &[(&str, &[(&str, bool)])] = &[
    (
        "Openers",
        &[
            (
                "Hello {{Name}}, we have processed your documents and are ready for the next step. Drop me a message. {{Author}}",
                false,
            ),
            (
                "Hello {{Name}}, a new product of ours may interest your business. Shall I tell you more? {{Author}}",
                false,
            ),
            ("Hello {{Name}}, this is {{Author}}. I am on my way to your office.", true),
        ],
    ),
    (
        "Replies",
        &[
            ("This has now been sent. {{Author}}", false),
            ("Would you like me to go over some options with you, {{Name}}? {{Author}}", false),
            (
                "You can upload documents to our secure drop box at https://example.com/upload. {{Author}}",
                false,
            ),
        ],
    ),
    (
        "Closing",
        &[(
            "Happy to help, {{Name}}. If you have a moment, could you review our conversation at https://example.com/review? {{Author}}",
            false,
        )],
    ),
];

/// Every category, with `{{Name}}` replaced by `name` and `{{Author}}` by `author`.
pub(crate) fn for_customer(name: &str, author: &str) -> Vec<Category> {
    TEMPLATES
        .iter()
        .map(|&(display_name, texts)| Category {
            display_name,
            templates: texts
                .iter()
                .map(|&(text, whatsapp_approved)| Template {
                    content: text.replace("{{Name}}", name).replace("{{Author}}", author),
                    whatsapp_approved,
                })
                .collect(),
        })
        .collect()
}
