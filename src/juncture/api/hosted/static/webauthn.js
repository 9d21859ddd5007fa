// The hosted step-up and login pages' passkey button (served from the package; the page's
// CSP allows only scripts of its own origin). It asks Juncture (the form's data-start, else
// the step-up's start) for the challenge's navigator.credentials.get() options (for the
// login form's "Sign in with a passkey": no allowCredentials, the authenticator picks the
// account), asks the browser for an assertion, and posts the page's form with the
// assertion (JSON, base64url members) as its code. Nothing else.
"use strict";
(function () {
  function toBytes(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  function toText(buffer) {
    let raw = "";
    for (const byte of new Uint8Array(buffer)) {
      raw += String.fromCharCode(byte);
    }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function say(form, text) {
    const status = form.querySelector("[data-passkey-status]");
    if (status) {
      status.textContent = text;
    }
  }

  async function usePasskey(form) {
    const fields = new URLSearchParams();
    for (const name of ["csrf", "challenge", "method"]) {
      if (form.elements[name]) {  // the login form's passkey names no challenge nor method
        fields.set(name, form.elements[name].value);
      }
    }
    const started = await fetch(form.dataset.start || "/hosted/v1/step-up/start", {
      method: "POST",
      body: fields,
      credentials: "same-origin",
    });
    const answer = await started.json();
    if (!started.ok) {
      say(form, answer.detail + " (" + answer.code + ")");
      return;
    }
    const options = answer.options;
    const publicKey = Object.assign({}, options, {
      challenge: toBytes(options.challenge),
      allowCredentials: (options.allowCredentials || []).map(
        (c) => Object.assign({}, c, { id: toBytes(c.id) })
      ),
    });
    const credential = await navigator.credentials.get({ publicKey: publicKey });
    const response = credential.response;
    const assertion = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: toText(response.clientDataJSON),
        authenticatorData: toText(response.authenticatorData),
        signature: toText(response.signature),
        userHandle: response.userHandle ? toText(response.userHandle) : null,
      },
      clientExtensionResults: credential.getClientExtensionResults(),
    };
    if (credential.authenticatorAttachment) {
      assertion.authenticatorAttachment = credential.authenticatorAttachment;
    }
    form.elements.code.value = JSON.stringify(assertion);
    form.submit();
  }

  document.addEventListener("DOMContentLoaded", function () {
    for (const button of document.querySelectorAll("button[data-passkey]")) {
      button.addEventListener("click", function () {
        say(button.form, "Waiting for the passkey…");
        usePasskey(button.form).catch(function (error) {
          say(button.form, "The passkey was not used (" + error.name + ").");
        });
      });
    }
  });
})();
