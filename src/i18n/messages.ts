/**
 * The one catalogue of user-facing text (not log records, which stay English): every message in
 * English and Russian, chosen by the locale (LC_ALL, then LC_MESSAGES, then LANG, as POSIX says).
 * Placeholders are {name}; a test checks that both languages have every key and the same
 * placeholders. Imports nothing of ours.
 */

export type Locale = 'en' | 'ru';

const en = {
  // postern doctor: step titles
  'doctor.title.uri': 'share link',
  'doctor.title.dns': 'DNS',
  'doctor.title.tcp': 'TCP connect',
  'doctor.title.tls': 'TLS and pin',
  'doctor.title.auth': 'upgrade and authentication',
  'doctor.title.stream': 'test stream',
  'doctor.title.throughput': 'throughput',
  // postern doctor: what a step found
  'doctor.ok.uri': 'bridge {hostPort}, {how}',
  'doctor.ok.uri.relay': 'bridge {hostPort} through the relay {relay}, {how}',
  'doctor.ok.uri.plain': 'plain ws (loopback only)',
  'doctor.ok.uri.pin': 'pinned certificate',
  'doctor.ok.uri.ca': 'CA-verified certificate',
  'doctor.ok.dns.literal': 'IP address in the link, no lookup needed',
  'doctor.ok.dns.literal.relay': 'relay IP address in the link, no lookup needed',
  'doctor.ok.dns.one': '{host} has 1 address',
  'doctor.ok.dns': '{host} has {count} addresses',
  'doctor.ok.tcp': 'connected to port {port}',
  'doctor.ok.tcp.relay': 'connected to relay port {port}',
  'doctor.skip.tls.plain': 'plain link (loopback, no TLS)',
  'doctor.ok.tls.pin': '{version}, certificate matches the pin',
  'doctor.ok.tls.ca': '{version}, certificate valid for {name}',
  'doctor.ok.auth': 'authenticated; ping {ms} ms',
  'doctor.ok.stream': 'opened a stream through the bridge in {ms} ms',
  'doctor.skip.throughput': 'no sample: pass --download http://HOST/FILE (1 MiB or more) to measure',
  'doctor.ok.throughput': '16 KB in {first} ms, 1 MiB in {second} ms ({mbps} Mbit/s past 16 KB)',
  'doctor.warn.throughput.short': 'the file had only {bytes} bytes: download one of 1 MiB or more to see throttling',
  'doctor.skip.earlier': 'not run (an earlier step failed)',
  // postern doctor: what went wrong
  'doctor.fail.uri': 'share link is not valid: {reason}',
  'doctor.fail.dns': 'cannot resolve {host} ({code})',
  'doctor.fail.tcp.timeout': 'no answer from port {port} within {ms} ms',
  'doctor.fail.tcp.timeout.relay': 'no answer from relay port {port} within {ms} ms',
  'doctor.fail.tcp.refused': 'connection refused on port {port}',
  'doctor.fail.tcp.refused.relay': 'connection refused on relay port {port}',
  'doctor.fail.tcp.reset': 'connection reset while connecting',
  'doctor.fail.tcp.other': 'cannot connect ({code})',
  'doctor.fail.tls.timeout': 'TLS handshake did not finish within {ms} ms',
  'doctor.fail.tls.reset': 'connection reset during the TLS handshake',
  'doctor.fail.tls.alert': 'TLS alert from the server ({alert})',
  'doctor.fail.tls.other': 'TLS handshake failed ({code})',
  'doctor.fail.tls.closed': 'connection closed during the TLS handshake',
  'doctor.fail.pin': 'certificate does not match the pin in the link',
  'doctor.fail.untrusted': 'certificate not trusted ({why})',
  'doctor.fail.clock': "clock skew: the bridge refused the token because this device's clock is off{by}",
  'doctor.fail.clock.by': ' (by {seconds} s)',
  'doctor.fail.auth.404': 'bridge answered 404: wrong secret or path, or not a Postern bridge',
  'doctor.fail.auth.status': 'not a Postern bridge: the server answered {status} to the upgrade',
  'doctor.fail.auth.notws': 'not a Postern bridge: the server did not speak WebSocket',
  'doctor.fail.auth.tls2': 'TLS failed on the second connection',
  'doctor.fail.auth.cut': 'connection cut or timed out during the WebSocket upgrade',
  'doctor.fail.pings': 'the bridge stopped answering pings',
  'doctor.fail.stream': 'the bridge could not open the test stream ({code})',
  'doctor.fail.download.url': '--download is not a URL',
  'doctor.fail.download.scheme': '--download must be an http:// URL',
  'doctor.fail.download.nothttp': '--download: the answer is not HTTP',
  'doctor.fail.download.status': '--download answered {status}',
  'doctor.fail.stalled': 'stalled: {bytes} bytes in {ms} ms',
  'doctor.fail.reset': 'transfer reset after {bytes} bytes ({code})',
  'doctor.fail.unexpected': 'unexpected error: {message}',
  // postern doctor: what to do (README's troubleshooting section quotes the English ones)
  'doctor.hint.badUri': 'copy the whole link again from whoever runs the bridge; it starts with postern://',
  'doctor.hint.dns': 'check the host name in the link; if DNS is blocked where you are, ask for a link with the IP address',
  'doctor.hint.refused': 'nothing listens there: the bridge is not running, or the port in the link is wrong',
  'doctor.hint.relayRefused': 'nothing listens there: the relay named in the link (connect=) is not running, or its port is wrong; tell whoever runs it',
  'doctor.hint.tcpTimeout': 'the host did not answer: it is down, or a firewall drops the traffic; try another network or bridge',
  'doctor.hint.reset': 'the connection was cut by something between you and the bridge (a middlebox); try another network or bridge',
  'doctor.hint.pin': "the certificate is not your bridge's: a middlebox is intercepting TLS, or the operator changed the key — ask for a new link",
  'doctor.hint.untrusted': "the certificate is not trusted for this name: ask for a link with a pin, or fix the bridge's certificate",
  'doctor.hint.tlsFailed': 'TLS was refused or cut: the port may not speak TLS, or a middlebox blocks it',
  'doctor.hint.notFound': 'ask the operator for a fresh link: your user may have been removed, or the link was mistyped',
  'doctor.hint.notBridge': 'the link points at an ordinary web server: check the host, port and path with the operator',
  'doctor.hint.clock': "set this device's clock to the right time (turn on automatic time), then try again",
  'doctor.hint.upgradeCut': 'the bridge did not complete the WebSocket upgrade: a proxy or middlebox in between may block WebSockets',
  'doctor.hint.stream': 'the tunnel works but the bridge could not reach the test target: try --target with another HOST:PORT',
  'doctor.hint.throughputCut': 'the transfer was cut or stalled: a middlebox may reset or throttle long connections; try another network or bridge',
  'doctor.hint.downloadUrl': 'pass an http:// URL (the tunnel already encrypts it)',
  'doctor.hint.downloadFile': 'pass an http:// URL of a file that exists',
  'doctor.hint.bug': 'report this as a bug',
  // postern doctor: the report around the steps
  'doctor.whatToDo': 'what to do: {hint}',
  'doctor.allPassed': 'all checks passed',
  'doctor.failedAt': 'postern doctor: failed at "{step}": {detail}',
  'doctor.noLink': 'no share link: pass one (postern doctor \'postern://…\'), or --config FILE, or set $POSTERN_BRIDGE, or put "bridges" in {file}',
} as const;

export type MessageKey = keyof typeof en;

const ru: Record<MessageKey, string> = {
  'doctor.title.uri': 'ссылка',
  'doctor.title.dns': 'DNS',
  'doctor.title.tcp': 'TCP-соединение',
  'doctor.title.tls': 'TLS и отпечаток',
  'doctor.title.auth': 'вход на мост',
  'doctor.title.stream': 'пробное соединение',
  'doctor.title.throughput': 'скорость',
  'doctor.ok.uri': 'мост {hostPort}, {how}',
  'doctor.ok.uri.relay': 'мост {hostPort} через ретранслятор {relay}, {how}',
  'doctor.ok.uri.plain': 'без TLS (только локально)',
  'doctor.ok.uri.pin': 'сертификат по отпечатку',
  'doctor.ok.uri.ca': 'сертификат, проверенный центром сертификации',
  'doctor.ok.dns.literal': 'в ссылке IP-адрес, DNS не нужен',
  'doctor.ok.dns.literal.relay': 'в ссылке IP-адрес ретранслятора, DNS не нужен',
  'doctor.ok.dns.one': '{host}: найден 1 адрес',
  'doctor.ok.dns': '{host}: адресов найдено — {count}',
  'doctor.ok.tcp': 'соединение с портом {port} установлено',
  'doctor.ok.tcp.relay': 'соединение с ретранслятором (порт {port}) установлено',
  'doctor.skip.tls.plain': 'ссылка без TLS (только локально)',
  'doctor.ok.tls.pin': '{version}, сертификат совпадает с отпечатком',
  'doctor.ok.tls.ca': '{version}, сертификат действителен для {name}',
  'doctor.ok.auth': 'вход выполнен; пинг {ms} мс',
  'doctor.ok.stream': 'соединение через мост открыто за {ms} мс',
  'doctor.skip.throughput': 'не измерялась: укажите --download http://АДРЕС/ФАЙЛ (1 МиБ или больше)',
  'doctor.ok.throughput': '16 КБ за {first} мс, 1 МиБ за {second} мс ({mbps} Мбит/с после первых 16 КБ)',
  'doctor.warn.throughput.short': 'в файле всего {bytes} байт: чтобы увидеть замедление, скачайте файл от 1 МиБ',
  'doctor.skip.earlier': 'не проверялось (предыдущий шаг не прошёл)',
  'doctor.fail.uri': 'ссылка неверна: {reason}',
  'doctor.fail.dns': 'не удалось найти адрес {host} ({code})',
  'doctor.fail.tcp.timeout': 'порт {port} не ответил за {ms} мс',
  'doctor.fail.tcp.timeout.relay': 'ретранслятор (порт {port}) не ответил за {ms} мс',
  'doctor.fail.tcp.refused': 'в соединении с портом {port} отказано',
  'doctor.fail.tcp.refused.relay': 'ретранслятор (порт {port}) отказал в соединении',
  'doctor.fail.tcp.reset': 'соединение сброшено при подключении',
  'doctor.fail.tcp.other': 'не удалось подключиться ({code})',
  'doctor.fail.tls.timeout': 'TLS-рукопожатие не завершилось за {ms} мс',
  'doctor.fail.tls.reset': 'соединение сброшено во время TLS-рукопожатия',
  'doctor.fail.tls.alert': 'сервер прервал TLS ({alert})',
  'doctor.fail.tls.other': 'TLS-рукопожатие не удалось ({code})',
  'doctor.fail.tls.closed': 'соединение закрыто во время TLS-рукопожатия',
  'doctor.fail.pin': 'сертификат не совпадает с отпечатком в ссылке',
  'doctor.fail.untrusted': 'сертификату нет доверия ({why})',
  'doctor.fail.clock': 'часы расходятся: мост отклонил вход, потому что часы этого устройства неверны{by}',
  'doctor.fail.clock.by': ' (на {seconds} с)',
  'doctor.fail.auth.404': 'мост ответил 404: неверный секрет или путь, или это не мост Postern',
  'doctor.fail.auth.status': 'это не мост Postern: сервер ответил {status}',
  'doctor.fail.auth.notws': 'это не мост Postern: сервер не поддерживает WebSocket',
  'doctor.fail.auth.tls2': 'TLS не удался при втором подключении',
  'doctor.fail.auth.cut': 'соединение оборвалось или истекло время при входе на мост',
  'doctor.fail.pings': 'мост перестал отвечать на пинг',
  'doctor.fail.stream': 'мост не смог открыть пробное соединение ({code})',
  'doctor.fail.download.url': '--download: это не URL',
  'doctor.fail.download.scheme': '--download: нужен адрес, начинающийся с http://',
  'doctor.fail.download.nothttp': '--download: ответ не похож на HTTP',
  'doctor.fail.download.status': '--download: сервер ответил {status}',
  'doctor.fail.stalled': 'передача остановилась: {bytes} байт за {ms} мс',
  'doctor.fail.reset': 'передача сброшена после {bytes} байт ({code})',
  'doctor.fail.unexpected': 'непредвиденная ошибка: {message}',
  'doctor.hint.badUri': 'скопируйте ссылку целиком ещё раз у того, кто держит мост; она начинается с postern://',
  'doctor.hint.dns': 'проверьте имя сервера в ссылке; если у вас блокируют DNS, попросите ссылку с IP-адресом',
  'doctor.hint.refused': 'там ничего не работает: мост не запущен или в ссылке неверный порт',
  'doctor.hint.relayRefused': 'там ничего не работает: ретранслятор из ссылки (connect=) не запущен или у него неверный порт; сообщите тому, кто его держит',
  'doctor.hint.tcpTimeout': 'сервер не ответил: он выключен или трафик блокируется; попробуйте другую сеть или другой мост',
  'doctor.hint.reset': 'соединение обрывает что-то между вами и мостом (оборудование провайдера); попробуйте другую сеть или другой мост',
  'doctor.hint.pin': 'это не сертификат вашего моста: кто-то перехватывает TLS, или владелец сменил ключ — попросите новую ссылку',
  'doctor.hint.untrusted': 'сертификату для этого имени нет доверия: попросите ссылку с отпечатком (pin) или исправьте сертификат моста',
  'doctor.hint.tlsFailed': 'TLS отклонён или оборван: порт не говорит по TLS, или его блокирует оборудование провайдера',
  'doctor.hint.notFound': 'попросите у владельца моста новую ссылку: ваш пользователь мог быть удалён, или в ссылке опечатка',
  'doctor.hint.notBridge': 'ссылка ведёт на обычный сайт: сверьте адрес, порт и путь с владельцем моста',
  'doctor.hint.clock': 'поставьте на устройстве точное время (включите автоматическую установку времени) и попробуйте снова',
  'doctor.hint.upgradeCut': 'вход на мост не завершился: прокси или оборудование провайдера по пути может блокировать WebSocket',
  'doctor.hint.stream': 'туннель работает, но мост не достучался до пробного адреса: попробуйте --target с другим АДРЕС:ПОРТ',
  'doctor.hint.throughputCut': 'передача оборвалась или остановилась: провайдер может сбрасывать или замедлять долгие соединения; попробуйте другую сеть или другой мост',
  'doctor.hint.downloadUrl': 'укажите адрес, начинающийся с http:// (туннель и так всё шифрует)',
  'doctor.hint.downloadFile': 'укажите http://-адрес существующего файла',
  'doctor.hint.bug': 'сообщите об этом как об ошибке',
  'doctor.whatToDo': 'что делать: {hint}',
  'doctor.allPassed': 'все проверки пройдены',
  'doctor.failedAt': 'postern doctor: не пройден шаг «{step}»: {detail}',
  'doctor.noLink': 'нет ссылки: укажите её (postern doctor \'postern://…\'), или --config ФАЙЛ, или переменную $POSTERN_BRIDGE, или "bridges" в {file}',
};

/** Every catalogue, for the test that checks they agree. */
export const CATALOGUES: Readonly<Record<Locale, Readonly<Record<MessageKey, string>>>> = { en, ru };

/** The locale for messages: the first set of LC_ALL, LC_MESSAGES, LANG; Russian when it is ru*. */
export function localeFromEnv(env: NodeJS.ProcessEnv = process.env): Locale {
  const value = [env.LC_ALL, env.LC_MESSAGES, env.LANG].find((v) => v !== undefined && v !== '');
  return value !== undefined && /^ru(?:[_.@-]|$)/i.test(value) ? 'ru' : 'en';
}

export type Params = Readonly<Record<string, string | number>>;
export type Translate = (key: MessageKey, params?: Params) => string;

/** A function that renders messages of one locale; a placeholder without a value stays as it is. */
export function translator(locale: Locale): Translate {
  const table = CATALOGUES[locale];
  return (key, params) => table[key].replace(/\{(\w+)\}/g, (all, name: string) => (params && name in params ? String(params[name]) : all));
}

/** English, for machine-readable output and as the default of library code. */
export const english: Translate = translator('en');
