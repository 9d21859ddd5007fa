// The console's progressive enhancement (it works without): a confirmation before the
// writes that mark a form with data-confirm (revoke, activate). Plain JS, no library.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
