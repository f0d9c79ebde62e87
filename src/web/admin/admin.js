// Copy buttons of the Web Manager: a button with data-copy="ID" copies the text of element ID
// (a <pre>'s text, an input's value). Without navigator.clipboard (plain http, older browsers)
// the text is selected and copied with execCommand. The buttons stay hidden without JavaScript.
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('button[data-copy]').forEach(function (button) {
    button.hidden = false;
    button.addEventListener('click', function () {
      var source = document.getElementById(button.getAttribute('data-copy'));
      var status = document.getElementById('copy-status');
      if (!source) { return; }
      var text = source.value !== undefined ? source.value : source.textContent;
      var done = function (ok) {
        if (status) { status.textContent = ok ? 'Copied.' : 'Select the text and copy it (Ctrl+C).'; }
      };
      var fallback = function () {
        var area = document.createElement('textarea');
        area.value = text;
        area.setAttribute('readonly', '');
        area.className = 'offscreen';
        document.body.appendChild(area);
        area.select();
        var ok = false;
        try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
        document.body.removeChild(area);
        done(ok);
      };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(function () { done(true); }, fallback);
      } else {
        fallback();
      }
    });
  });
});
