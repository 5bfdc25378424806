/* The console's only script: progressive enhancement, nothing needs it to work.
   - The live alerts page: an EventSource on data-stream; each pushed alert (server-rendered HTML) is put
     at the top, with an optional beep. EventSource reconnects by itself and resumes from the last id;
     when the session has ended the stream says so (or can no longer be opened) and the page reloads,
     which leads to the login page.
   - The sound choice is remembered in this browser (localStorage). */
(function () {
  "use strict";
  var list = document.getElementById("alert-list");
  if (!list || !list.dataset.stream) { return; }
  var state = document.getElementById("live-state");
  var sound = document.getElementById("sound");
  var audio = null;
  if (sound) {
    sound.checked = localStorage.getItem("alpr-sound") === "1";
    sound.addEventListener("change", function () { localStorage.setItem("alpr-sound", sound.checked ? "1" : "0"); });
  }
  function show(text, cls) { if (state) { state.textContent = text; state.className = "live " + cls; } }
  function beep() {
    if (!sound || !sound.checked) { return; }
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var osc = audio.createOscillator(), gain = audio.createGain();
      osc.frequency.value = 880; gain.gain.value = 0.2;
      osc.connect(gain); gain.connect(audio.destination);
      osc.start(); osc.stop(audio.currentTime + 0.4);
    } catch (e) { /* no audio here: the alert still shows */ }
  }
  var failures = 0;
  var source = new EventSource(list.dataset.stream);
  source.onopen = function () { failures = 0; show("live", "on"); };
  source.addEventListener("alert", function (ev) {
    var doc = JSON.parse(ev.data);
    if (document.getElementById("alert-" + doc.id)) { return; }
    var empty = document.getElementById("no-alerts");
    if (empty) { empty.remove(); }
    var holder = document.createElement("div");
    holder.innerHTML = doc.html;
    var card = holder.firstElementChild;
    card.classList.add("fresh");
    list.insertBefore(card, list.firstChild);
    beep();
  });
  source.addEventListener("ended", function () { source.close(); window.location.reload(); });
  source.onerror = function () {
    failures += 1;
    if (source.readyState === EventSource.CLOSED) {        // refused (e.g. logged out): reload to the login page
      window.location.reload();
      return;
    }
    show(failures > 2 ? "reconnecting (" + failures + ")" : "reconnecting", "off");
  };
}());
