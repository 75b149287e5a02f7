//! The diesel schema, shared by both backends: only column types that SQLite and PostgreSQL both
//! map the same way (text, bigint, integer, boolean, timestamp in UTC).

diesel::table! {
    merchants (id) {
        id -> Text,
        name -> Text,
        status -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        merchant_id -> Text,
        livemode -> Bool,
        secret_hash -> Text,
        hint -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    orders (id) {
        id -> Text,
        merchant_id -> Text,
        livemode -> Bool,
        claim_id -> Text,
        claim_issuer -> Text,
        consumer_id -> Text,
        experience_id -> Nullable<Text>,
        distribution_id -> Nullable<Text>,
        currency -> Text,
        amount_total -> BigInt,
        status -> Text,
        expires_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
        cancellation_reason -> Nullable<Text>,
    }
}

diesel::table! {
    order_items (order_id, position) {
        order_id -> Text,
        position -> Integer,
        sku -> Text,
        name -> Text,
        quantity -> BigInt,
        unit_amount -> BigInt,
        amount -> BigInt,
    }
}

diesel::table! {
    payments (id) {
        id -> Text,
        order_id -> Text,
        amount -> BigInt,
        currency -> Text,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        failed_attempts -> Integer,
    }
}

diesel::table! {
    checkout_sessions (order_id) {
        order_id -> Text,
        token_hash -> Text,
        mode -> Text,
        success_url -> Text,
        cancel_url -> Text,
        status -> Text,
        expires_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    idempotency_keys (merchant_id, livemode, idempotency_key) {
        merchant_id -> Text,
        livemode -> Bool,
        idempotency_key -> Text,
        fingerprint -> Text,
        outcome -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    payment_attempts (id) {
        id -> Text,
        payment_id -> Text,
        provider -> Text,
        outcome -> Text,
        decline_code -> Nullable<Text>,
        card_brand -> Text,
        card_last4 -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        merchant_id -> Text,
        livemode -> Bool,
        url -> Text,
        event_types -> Text,
        status -> Text,
        disabled_reason -> Nullable<Text>,
        secret_version -> Integer,
        previous_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> Text,
        merchant_id -> Text,
        livemode -> Bool,
        event_type -> Text,
        payload -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (endpoint_id, event_id) {
        event_id -> Text,
        endpoint_id -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        leased_until -> Nullable<Timestamp>,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        delivered_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(webhook_deliveries -> webhook_events (event_id));
diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));
diesel::joinable!(api_keys -> merchants (merchant_id));
diesel::joinable!(payment_attempts -> payments (payment_id));
diesel::joinable!(orders -> merchants (merchant_id));
diesel::joinable!(order_items -> orders (order_id));
diesel::joinable!(payments -> orders (order_id));
diesel::joinable!(checkout_sessions -> orders (order_id));

diesel::allow_tables_to_appear_in_same_query!(
    merchants,
    api_keys,
    orders,
    order_items,
    payments,
    checkout_sessions,
    idempotency_keys,
    payment_attempts,
    webhook_endpoints,
    webhook_events,
    webhook_deliveries,
);
