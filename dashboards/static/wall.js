// Live updates for the Communalia wall screen.
//
// The page is complete without this script; with it, each `snapshot` event from
// `/events` (the `GET /api/live` body) is written into the elements marked
// `data-field` and `data-service`. Numbers are formatted exactly as the server does
// (dashboards/src/format.rs): change both together. The words come from the
// `data-t-*` attributes of <body>, so the script holds no translations.
(function () {
  'use strict';

  var body = document.body;
  var lang = body.getAttribute('data-lang') || 'fr';
  var timeZone = body.getAttribute('data-tz') || undefined;
  var locale = lang === 'fr' ? 'fr-FR' : 'en-GB';

  // Same threshold as RESTING_BELOW_W in dashboards/src/wall.rs.
  var RESTING_BELOW_W = 20;
  // Without a snapshot for this long the figures are called out of date.
  var SILENCE_LIMIT_MS = 10000;
  var STATE_ICONS = { served: '\u2714', partial: '\u25D0', shed: '\u2716', idle: '\u25CB', unknown: '?' };
  var SIGNAL_ICONS = { use: '\u2600', hold: '\u2298', unknown: '?' };
  var NO_VALUE = '\u2014';

  function text(name) {
    return body.getAttribute('data-t-' + name) || '';
  }

  function fill(template, name, value) {
    return template.split('{' + name + '}').join(value);
  }

  function isNumber(x) {
    return typeof x === 'number' && isFinite(x);
  }

  function formatPower(watts) {
    if (!isNumber(watts)) return NO_VALUE;
    var magnitude = Math.abs(watts);
    var wholeWatts = Math.round(magnitude);
    var number, unit;
    if (wholeWatts < 1000) {
      number = String(wholeWatts);
      unit = 'W';
    } else {
      var tenths = Math.round(magnitude / 100);
      number = Math.floor(tenths / 10) + (lang === 'fr' ? ',' : '.') + (tenths % 10);
      unit = 'kW';
    }
    var sign = watts < 0 && /[1-9]/.test(number) ? '\u2212' : '';
    return sign + number + ' ' + unit;
  }

  function formatPercent(pct) {
    if (!isNumber(pct)) return NO_VALUE;
    var whole = String(Math.round(pct) || 0);
    return lang === 'fr' ? whole + ' %' : whole + '%';
  }

  // Hours with at most two decimals, as few as they need (format_hours), counted
  // as the catalog counts (Lang::singular): French below 2 in the singular,
  // English only exactly 1.
  function formatHours(hours) {
    var centi = Math.round(hours * 100);
    var whole = Math.floor(centi / 100);
    var frac = centi % 100;
    var sep = lang === 'fr' ? ',' : '.';
    var number = frac === 0 ? String(whole)
      : frac % 10 === 0 ? whole + sep + (frac / 10)
      : whole + sep + (frac < 10 ? '0' : '') + frac;
    var singular = lang === 'fr' ? centi < 200 : centi === 100;
    return fill(text(singular ? 'hours-one' : 'hours-many'), 'n', number);
  }

  function dateTimeFormat(options) {
    try {
      options.timeZone = timeZone;
      return new Intl.DateTimeFormat(locale, options);
    } catch (e) {
      // Unknown time zone in this browser: the device's own zone is the next best.
      delete options.timeZone;
      return new Intl.DateTimeFormat(locale, options);
    }
  }
  var timeFormat = dateTimeFormat({ hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
  var dayFormat = dateTimeFormat({ day: '2-digit', month: '2-digit', year: 'numeric' });

  // "14:32:05", or "12/03/2026 14:32:05" when not today (site time zone).
  function formatMoment(iso) {
    var at = new Date(iso);
    if (isNaN(at.getTime())) return null;
    var day = dayFormat.format(at);
    var time = timeFormat.format(at);
    return day === dayFormat.format(new Date()) ? time : day + ' ' + time;
  }

  function fields(name) {
    return document.querySelectorAll('[data-field="' + name + '"]');
  }

  function setField(name, value) {
    var elements = fields(name);
    for (var i = 0; i < elements.length; i++) {
      if (elements[i].textContent !== value) elements[i].textContent = value;
    }
  }

  function setClassWithPrefix(element, prefix, suffix) {
    var stale = [];
    for (var i = 0; i < element.classList.length; i++) {
      if (element.classList[i].indexOf(prefix) === 0) stale.push(element.classList[i]);
    }
    for (var j = 0; j < stale.length; j++) element.classList.remove(stale[j]);
    element.classList.add(prefix + suffix);
  }

  // --- Staleness: from the server's flag, or from our own silence timer. ---
  var lastSnapshotAt = Date.now();
  var serverStale = body.classList.contains('is-stale');
  var serverStaleText = (fields('stale_text')[0] || {}).textContent || text('stale-never');
  var lastSignal = (fields('signal')[0] || { getAttribute: function () { return 'unknown'; } })
    .getAttribute('data-signal');

  function showSignal(code) {
    var element = fields('signal')[0];
    if (!element) return;
    setClassWithPrefix(element, 'signal-', code);
    element.setAttribute('data-signal', code);
    setField('signal_icon', SIGNAL_ICONS[code] || '?');
    setField('signal_word', text('signal-' + code));
    setField('signal_hint', text('hint-' + code));
  }

  function refreshStale() {
    var silent = Date.now() - lastSnapshotAt > SILENCE_LIMIT_MS;
    var stale = serverStale || silent;
    var banner = fields('stale_banner')[0];
    if (banner) banner.hidden = !stale;
    body.classList.toggle('is-stale', stale);
    setField('stale_text', serverStale ? serverStaleText : text('stale-no-update'));
    // Figures that stopped moving must not invite anyone to switch a load on.
    showSignal(stale ? 'unknown' : lastSignal);
  }

  function setConnectionLost(lost) {
    var element = fields('connection')[0];
    if (!element) return;
    element.textContent = lost ? text('connection-lost') : '';
    element.hidden = !lost;
  }

  // --- Applying a snapshot. ---
  function flowText(watts, forward, backward, resting) {
    if (!isNumber(watts)) return text('unknown');
    var power = formatPower(Math.abs(watts));
    if (watts >= RESTING_BELOW_W) return fill(text(forward), 'power', power);
    if (watts <= -RESTING_BELOW_W) return fill(text(backward), 'power', power);
    return text(resting);
  }

  // A stale snapshot's figures are not readings: every service is "unknown".
  function applyServices(services, stale) {
    var rows = document.querySelectorAll('[data-service]');
    var byId = {};
    for (var i = 0; i < rows.length; i++) byId[rows[i].getAttribute('data-service')] = rows[i];
    var unknown = rows.length !== services.length;
    services.forEach(function (service) {
      var row = byId[service.id];
      if (!row) {
        unknown = true;
        return;
      }
      var state = stale ? 'unknown' : (STATE_ICONS[service.state] ? service.state : 'idle');
      setClassWithPrefix(row, 'state-', state);
      row.setAttribute('data-state', state);
      var receives = (state === 'unknown' || state === 'idle') ? ''
        : fill(fill(text('service-receives'), 'allocated', formatPower(service.allocated_w)),
          'demand', formatPower(service.demand_w));
      var parts = {
        icon: STATE_ICONS[state],
        state: text('state-' + state),
        receives: receives
      };
      Object.keys(parts).forEach(function (name) {
        var element = row.querySelector('[data-svc="' + name + '"]');
        if (element && element.textContent !== parts[name]) element.textContent = parts[name];
      });
    });
    return !unknown;
  }

  // The list of services changed (a new plan): the server draws the new layout.
  function reloadOnce() {
    var key = 'communalia-wall-reloaded-at';
    var last = Number(window.sessionStorage && sessionStorage.getItem(key)) || 0;
    if (Date.now() - last < 30000) return;
    if (window.sessionStorage) sessionStorage.setItem(key, String(Date.now()));
    window.location.reload();
  }

  function apply(snapshot) {
    // Out-of-date figures are drawn as unknown, as the server draws them.
    var site = snapshot.stale === true ? {} : (snapshot.site || {});
    setField('site.pv_w', formatPower(site.pv_w));
    setField('site.consumption_w', formatPower(Math.max(site.load_w + site.unmetered_w, 0)));
    setField('site.battery_soc_pct', formatPercent(site.battery_soc_pct));
    setField('site.battery_w', flowText(site.battery_w, 'battery-discharging', 'battery-charging', 'battery-idle'));
    setField('site.grid_w', formatPower(Math.abs(site.grid_w)));
    setField('grid_direction', isNumber(site.grid_w)
      ? (site.grid_w >= RESTING_BELOW_W ? text('grid-import')
        : site.grid_w <= -RESTING_BELOW_W ? text('grid-export') : text('grid-idle'))
      : text('unknown'));
    setField('site.headroom_w', formatPower(site.headroom_w));
    setField('site.available_w', isNumber(site.available_w)
      ? fill(text('available'), 'power', formatPower(site.available_w)) : text('unknown'));

    var moment = snapshot.last_data ? formatMoment(snapshot.last_data) : null;
    setField('last_data', moment ? fill(text('last-data'), 'time', moment) : text('no-data'));
    var time = fields('last_data')[0];
    if (time) time.setAttribute('datetime', snapshot.last_data || '');

    lastSnapshotAt = Date.now();
    serverStale = snapshot.stale === true;
    serverStaleText = moment ? fill(text('stale-since'), 'time', moment) : text('stale-never');
    lastSignal = SIGNAL_ICONS[snapshot.signal] ? snapshot.signal : 'unknown';
    refreshStale();

    var contributions = snapshot.contributions;
    if (contributions && isNumber(contributions.hours_validated_this_week) &&
        contributions.hours_validated_this_week >= 0) {
      setField('contributions.hours_validated_this_week', formatHours(contributions.hours_validated_this_week));
    }

    if (!applyServices(snapshot.services || [], snapshot.stale === true)) reloadOnce();
  }

  // --- The connection. EventSource reconnects by itself after a dropped
  // connection; if it gives up (server error, wrong content type) we start over.
  var source = null;
  function connect() {
    source = new EventSource('/events');
    source.addEventListener('open', function () {
      setConnectionLost(false);
    });
    source.addEventListener('snapshot', function (event) {
      var snapshot;
      try {
        snapshot = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      setConnectionLost(false);
      apply(snapshot);
    });
    source.addEventListener('error', function () {
      setConnectionLost(true);
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        window.setTimeout(connect, 5000);
      }
    });
  }

  // --- Today's curve: drawn by the server; fetched again every few minutes
  // (data-refresh-ms) and put in place, so that a kiosk that never reloads still
  // sees the day go by. A failed fetch keeps the curve already shown.
  function refreshCurve() {
    var figure = fields('today_curve')[0];
    if (!figure || !window.fetch) return;
    window.fetch('/wall/today?lang=' + encodeURIComponent(lang), { cache: 'no-store' })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) { if (html !== null) figure.innerHTML = html; })
      .catch(function () {});
  }
  var curve = fields('today_curve')[0];
  var curveEvery = curve ? Number(curve.getAttribute('data-refresh-ms')) : 0;
  if (curveEvery > 0) window.setInterval(refreshCurve, curveEvery);

  if (window.EventSource) connect();
  window.setInterval(refreshStale, 1000);
})();
