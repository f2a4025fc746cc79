// homestick: the kiosk's lock (/usr/lib/firefox-esr/homestick-kiosk.cfg) runs at every start of
// firefox-esr, with the rights of the browser itself (it replaces file pickers and watches
// every navigation). If it cannot be read or fails, firefox-esr does not start: the kiosk
// stays closed rather than open.
pref("general.config.filename", "homestick-kiosk.cfg");
pref("general.config.obscure_value", 0);
pref("general.config.sandbox_enabled", false);
