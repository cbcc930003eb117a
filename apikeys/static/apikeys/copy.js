// The one-time key page: a Copy button for the plaintext key. No inline script (CSP).
document.addEventListener("DOMContentLoaded", function () {
  var button = document.getElementById("copy-key");
  var field = document.getElementById("plaintext-key");
  if (!button || !field) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    field.select();
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });
});
