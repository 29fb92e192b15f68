//! Email through SMTP (`lettre`): the title as subject, the text as a
//! plain-text body. The idempotency key becomes the `Message-ID` (the same
//! for every attempt, so a mail system or a ticketing inbox can drop the
//! repeat) and the body's last line.

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::{Digest, Sha256};

use super::DeliveryError;
use crate::notify::config::{EmailSettings, SmtpTls};

/// The `Message-ID` of a key: a hash, since a key may hold characters a
/// message id cannot.
pub fn message_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("<{hex}@detectd>")
}

/// The mail of one message.
pub fn mail(
    settings: &EmailSettings,
    key: &str,
    title: &str,
    text: &str,
) -> Result<Message, DeliveryError> {
    let bad = |e: String| DeliveryError::Message(e);
    let from: Mailbox = settings
        .from
        .parse()
        .map_err(|e| bad(format!("from: {e}")))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(title)
        .message_id(Some(message_id(key)))
        .header(ContentType::TEXT_PLAIN);
    for to in &settings.to {
        builder = builder.to(to.parse().map_err(|e| bad(format!("to: {e}")))?);
    }
    builder
        .body(format!("{text}\n\n--\ndetectd, idempotency key {key}\n"))
        .map_err(|e| bad(e.to_string()))
}

/// Sends `mail` through the output's SMTP server.
pub async fn send(
    settings: &EmailSettings,
    mail: Message,
    timeout: std::time::Duration,
) -> Result<(), DeliveryError> {
    let smtp_error = |e: lettre::transport::smtp::Error| DeliveryError::Smtp {
        permanent: e.is_permanent(),
        reason: super::error_chain(&e),
    };
    let builder = match settings.tls {
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host),
        SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host),
        SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &settings.host,
        )),
    }
    .map_err(smtp_error)?;
    let mut builder = builder.port(settings.port).timeout(Some(timeout));
    if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    let transport = builder.build();
    match tokio::time::timeout(timeout, transport.send(mail)).await {
        Err(_) => Err(DeliveryError::Timeout(timeout)),
        Ok(Err(e)) => Err(smtp_error(e)),
        Ok(Ok(_)) => Ok(()),
    }
}
