// The quality page's play buttons: the call's recording from the moment of a match.
// The first play loads the file with a media fragment (#t=) that starts it there; once
// the audio knows its length, a seek is currentTime (the browser asks the server for the
// range it needs).
"use strict";
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-play]");
  if (!button) return;
  const audio = document.getElementById(button.dataset.play);
  const at = Number(button.dataset.at);
  if (!audio || !Number.isFinite(at) || at < 0) return;
  if (audio.readyState >= HTMLMediaElement.HAVE_METADATA) {
    audio.currentTime = at;
  } else {
    audio.src = `${audio.dataset.src}#t=${at.toFixed(2)}`;
  }
  audio.play().catch(() => {}); // no audio device (a wall PC, a headless test): seeked anyway
});
