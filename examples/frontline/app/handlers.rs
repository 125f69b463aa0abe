//! The Frontline callbacks. Each runs only after the signature layer verified the request
//! (`webhook` is `None` only in report-only mode, for a request that failed the check).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use tower_twilio_signature::VerifiedWebhook;

use super::customers::{self, CustomerSummary};
use super::{templates, ApiError, AppState, ConversationUpdate, Params};

type Answer = Result<Json<Value>, ApiError>;

/// CRM Callback URL: the customers list and a customer's details.
pub(super) async fn crm(
    State(state): State<AppState>,
    webhook: Option<VerifiedWebhook>,
    params: Params,
) -> Answer {
    state.count_callback();
    let location = params.require("Location")?;
    if !matches!(
        location,
        "GetCustomerDetailsByCustomerId" | "GetCustomersList"
    ) {
        return Err(ApiError::unknown_location(location));
    }
    let worker = params.require("Worker")?;
    tracing::debug!(
        url = webhook.as_ref().map(VerifiedWebhook::url),
        location,
        worker,
        "CRM callback"
    );
    match location {
        "GetCustomerDetailsByCustomerId" => {
            let id = params.require("CustomerId")?;
            let customer = state.customer(id).ok_or_else(|| {
                ApiError::not_found(format!("no customer with CustomerId {id:?}"))
            })?;
            Ok(Json(json!({ "objects": { "customer": customer } })))
        }
        "GetCustomersList" => {
            let page_size = params.require("PageSize")?;
            let page_size = page_size
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| ApiError::bad("PageSize", "expected a whole number above 0"))?;
            let list: Vec<CustomerSummary<'_>> = customers::page(
                state.customers(),
                params.get("Query"),
                params.get("Anchor"),
                page_size,
            )
            .map(CustomerSummary::from)
            .collect();
            Ok(Json(json!({
                "objects": { "customers": list },
                "searchable": true,
            })))
        }
        other => Err(ApiError::unknown_location(other)),
    }
}

/// Outgoing Conversations Callback URL: the number (or WhatsApp sender) a new
/// conversation with a customer is sent from.
pub(super) async fn outgoing_conversation(
    State(state): State<AppState>,
    webhook: Option<VerifiedWebhook>,
    params: Params,
) -> Answer {
    state.count_callback();
    let location = params.require("Location")?;
    if location != "GetProxyAddress" {
        return Err(ApiError::unknown_location(location));
    }
    let worker = params.require("Worker")?;
    tracing::debug!(
        url = webhook.as_ref().map(VerifiedWebhook::url),
        location,
        worker,
        "outgoing conversation callback"
    );
    let channel = params.require("ChannelType")?;
    let address = match channel {
        "sms" => state.inner.sms_number.as_deref(),
        "whatsapp" => state.inner.whatsapp_number.as_deref(),
        "chat" => None,
        _ => {
            return Err(ApiError::bad(
                "ChannelType",
                "expected sms, whatsapp or chat",
            ))
        }
    };
    match address {
        Some(address) => Ok(Json(json!({ "proxy_address": address }))),
        None => Err(ApiError::not_found(format!(
            "no proxy address is configured for ChannelType {channel}"
        ))),
    }
}

/// Templates Callback URL: the template categories for a customer, placeholders filled.
pub(super) async fn templates(
    State(state): State<AppState>,
    webhook: Option<VerifiedWebhook>,
    params: Params,
) -> Answer {
    state.count_callback();
    let location = params.require("Location")?;
    if location != "GetTemplatesByCustomerId" {
        return Err(ApiError::unknown_location(location));
    }
    let worker = params.require("Worker")?;
    tracing::debug!(
        url = webhook.as_ref().map(VerifiedWebhook::url),
        location,
        worker,
        "templates callback"
    );
    let id = params.require("CustomerId")?;
    let customer = state
        .customer(id)
        .ok_or_else(|| ApiError::not_found(format!("no customer with CustomerId {id:?}")))?;
    let categories = templates::for_customer(&customer.display_name, worker);
    Ok(Json(json!(categories)))
}

/// Custom routing callback URL: adds a worker to a new inbound conversation, the
/// customer's own or, for an address in no customer's channels (a new customer), the
/// default worker. Answers 200 whoever it picks; the worker is added after the answer.
pub(super) async fn routing(
    State(state): State<AppState>,
    webhook: Option<VerifiedWebhook>,
    params: Params,
) -> Answer {
    state.count_callback();
    let conversation_sid = params.require("ConversationSid")?;
    let address = params.require("MessagingBinding.Address")?;
    tracing::debug!(
        url = webhook.as_ref().map(VerifiedWebhook::url),
        conversation_sid,
        "routing callback"
    );
    let customer = state.customer_by_address(address);
    let worker = match customer {
        Some(customer) => {
            tracing::info!(
                conversation_sid,
                worker = customer.worker,
                "routing the conversation to the customer's worker"
            );
            Some(customer.worker.as_str())
        }
        None => {
            let worker = state.default_worker();
            match worker {
                Some(worker) => tracing::info!(
                    conversation_sid,
                    worker,
                    "the address is not in the customer book: routing the conversation to the default worker"
                ),
                None => tracing::warn!(
                    conversation_sid,
                    "the address is not in the customer book and FRONTLINE_DEFAULT_WORKER is \
                     not set: the conversation is not routed"
                ),
            }
            worker
        }
    };
    if let Some(worker) = worker {
        state.dispatch(ConversationUpdate::AddWorker {
            conversation_sid: conversation_sid.to_owned(),
            worker: worker.to_owned(),
        });
    }
    Ok(Json(json!({
        "conversation_sid": conversation_sid,
        "customer_id": customer.map(|c| &c.customer_id),
        "worker": worker,
    })))
}

/// Conversations webhooks (pre- and post-event): names new conversations after the
/// customer, and ties customer participants to their `customer_id`. Other events are
/// acknowledged and ignored.
pub(super) async fn conversations(
    State(state): State<AppState>,
    webhook: Option<VerifiedWebhook>,
    params: Params,
) -> Answer {
    state.count_callback();
    let event = params.require("EventType")?;
    tracing::debug!(
        url = webhook.as_ref().map(VerifiedWebhook::url),
        event,
        "conversations webhook"
    );
    let address = params.get("MessagingBinding.Address");
    match event {
        // A pre-event webhook: the answer sets the new conversation's properties.
        "onConversationAdd" => Ok(Json(match address {
            Some(address) => {
                let customer = state.customer_by_address(address);
                let attributes = json!({ "avatar": customer.and_then(|c| c.avatar.as_deref()) });
                json!({
                    "friendly_name": customer.map_or(address, |c| c.display_name.as_str()),
                    "attributes": attributes.to_string(),
                })
            }
            None => json!({}),
        })),
        "onParticipantAdded" => {
            let conversation_sid = params.require("ConversationSid")?;
            let participant_sid = params.require("ParticipantSid")?;
            let is_customer = address.is_some() && params.get("Identity").is_none();
            if let Some(customer) = address
                .filter(|_| is_customer)
                .and_then(|a| state.customer_by_address(a))
            {
                state.dispatch(ConversationUpdate::TagCustomer {
                    conversation_sid: conversation_sid.to_owned(),
                    participant_sid: participant_sid.to_owned(),
                    customer_id: customer.customer_id.clone(),
                    display_name: customer.display_name.clone(),
                    avatar: customer.avatar.clone(),
                });
                return Ok(Json(json!({
                    "customer_id": customer.customer_id,
                    "display_name": customer.display_name,
                    "avatar": customer.avatar,
                })));
            }
            Ok(Json(json!({})))
        }
        _ => Ok(Json(json!({}))),
    }
}
