//! Plain-English descriptions: "At 09:30, Monday through Friday".

use crate::CronSchedule;
use crate::schedule::DaySpec;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

pub(crate) fn describe(s: &CronSchedule) -> String {
    let f = &s.fields;
    let mut out = time_of_day(&values(f.seconds, 0, 59), &values(f.minutes, 0, 59), &values(u64::from(f.hours), 0, 23));
    out.push_str(&days(&f.days));
    let months = values(u64::from(f.months), 1, 12);
    if months.len() < 12 {
        let name = |m: u32| MONTHS[m as usize - 1].to_owned();
        out.push_str(", ");
        out.push_str(&match step_from(&months, 1, 12) {
            Some(step) => format!("every {step} months"),
            None if months.len() == 1 => format!("only in {}", name(months[0])),
            None => format!("in {}", range_or_list(&months, name)),
        });
    }
    out
}

fn time_of_day(seconds: &[u32], minutes: &[u32], hours: &[u32]) -> String {
    let all_minutes = minutes.len() == 60;
    let all_hours = hours.len() == 24;
    // A short list of exact times reads best: "At 09:00 and 17:30".
    if minutes.len() * hours.len() * seconds.len() <= 4 && !all_hours {
        let times: Vec<String> = hours
            .iter()
            .flat_map(|h| minutes.iter().map(move |m| (h, m)))
            .flat_map(|(h, m)| {
                seconds.iter().map(move |s| {
                    if seconds == [0] { format!("{h:02}:{m:02}") } else { format!("{h:02}:{m:02}:{s:02}") }
                })
            })
            .collect();
        return format!("At {}", list(&times));
    }

    let minute_part = if all_minutes {
        "every minute".to_owned()
    } else if let Some(step) = step_from(minutes, 0, 59) {
        format!("every {step} minutes")
    } else if minutes == [0] && hours.len() > 1 {
        String::new() // "every hour", said by the hour part
    } else if minutes.len() == 1 && all_hours {
        format!("at {} minutes past every hour", minutes[0])
    } else if minutes.len() == 1 {
        format!("at minute {}", minutes[0])
    } else {
        format!("at minutes {}", range_or_list(minutes, |m| m.to_string()))
    };
    let hour_part = if all_hours {
        if minute_part.is_empty() { "every hour".to_owned() } else { String::new() }
    } else if let Some(step) = step_from(hours, 0, 23) {
        format!("every {step} hours")
    } else if is_contiguous(hours) && hours.len() > 1 {
        let (first, last) = (hours[0], hours[hours.len() - 1]);
        if minute_part.is_empty() {
            format!("every hour from {first:02}:00 through {last:02}:00")
        } else {
            format!("between {first:02}:00 and {last:02}:59")
        }
    } else if minute_part.is_empty() {
        format!("at {}", list(&hours.iter().map(|h| format!("{h:02}:00")).collect::<Vec<_>>()))
    } else {
        format!("during hours {}", list(&hours.iter().map(|h| h.to_string()).collect::<Vec<_>>()))
    };
    let minute_and_hour = match (minute_part.is_empty(), hour_part.is_empty()) {
        (true, _) => hour_part.clone(),
        (false, true) => minute_part.clone(),
        (false, false) => format!("{minute_part}, {hour_part}"),
    };

    if seconds == [0] {
        return capitalize(&minute_and_hour);
    }
    let second_part = if seconds.len() == 60 {
        "every second".to_owned()
    } else if let Some(step) = step_from(seconds, 0, 59) {
        format!("every {step} seconds")
    } else if seconds.len() == 1 {
        format!("at second {}", seconds[0])
    } else {
        format!("at seconds {}", range_or_list(seconds, |s| s.to_string()))
    };
    if minute_and_hour == "every minute" {
        capitalize(&second_part)
    } else if all_minutes {
        // "every second, every minute, between 09:00 and 17:59" says "every minute" once too often.
        capitalize(&format!("{second_part}, {hour_part}"))
    } else {
        capitalize(&format!("{second_part}, {minute_and_hour}"))
    }
}

fn days(d: &DaySpec) -> String {
    let dom_values = values(u64::from(d.dom), 1, 31);
    let dow_values = values(u64::from(d.dow), 0, 6);
    let dom_all = !d.dom_restricted && dom_values.len() == 31;
    let dow_all = !d.dow_restricted && dow_values.len() == 7;

    let mut dom_items = Vec::new();
    if !dom_all && !dom_values.is_empty() {
        dom_items.push(match step_from(&dom_values, 1, 31) {
            Some(step) => format!("every {} day", ordinal(step)),
            None if dom_values.len() == 1 => format!("day {}", dom_values[0]),
            None => format!("days {}", range_or_list(&dom_values, |v| v.to_string())),
        });
    }
    if d.dom_last {
        dom_items.push("the last day".to_owned());
    }
    if d.dom_last_weekday {
        dom_items.push("the last weekday".to_owned());
    }
    if d.dom_nearest_weekday != 0 {
        dom_items.push(format!("the weekday nearest day {}", d.dom_nearest_weekday));
    }
    let dom_phrase = (!dom_items.is_empty()).then(|| format!("on {} of the month", list(&dom_items)));

    let mut dow_items = Vec::new();
    if !dow_all && !dow_values.is_empty() {
        let name = |v: u32| WEEKDAYS[v as usize].to_owned();
        dow_items.push(if dow_values == [1, 2, 3, 4, 5] {
            "Monday through Friday".to_owned()
        } else {
            range_or_list(&dow_values, name)
        });
    }
    for (wd, name) in WEEKDAYS.iter().enumerate() {
        for k in 1..=5 {
            if d.dow_nth[wd] & (1 << k) != 0 {
                dow_items.push(format!(
                    "the {} {name} of the month",
                    ["first", "second", "third", "fourth", "fifth"][k - 1]
                ));
            }
        }
        if d.dow_last & (1 << wd) != 0 {
            dow_items.push(format!("the last {name} of the month"));
        }
    }
    let dow_phrase = (!dow_items.is_empty()).then(|| list(&dow_items));

    match (dom_phrase, dow_phrase) {
        (None, None) => String::new(),
        (Some(dom), None) => format!(" {dom}"),
        (None, Some(dow)) if dow.starts_with("the ") => format!(", on {dow}"),
        (None, Some(dow)) if WEEKDAYS.contains(&dow.as_str()) => format!(", only on {dow}"),
        (None, Some(dow)) => format!(", {dow}"),
        (Some(dom), Some(dow)) if d.is_or() => format!(" {dom} or on {dow}"),
        (Some(dom), Some(dow)) => format!(" {dom}, if it is {dow}"),
    }
}

/// The set bits of `mask` between `lo` and `hi`.
fn values(mask: u64, lo: u32, hi: u32) -> Vec<u32> {
    (lo..=hi).filter(|v| mask & (1 << v) != 0).collect()
}

/// `Some(step)` when the values are `lo, lo + step, ...` up to `hi`, with a step above 1.
fn step_from(values: &[u32], lo: u32, hi: u32) -> Option<u32> {
    let step = values.get(1)?.checked_sub(values[0])?;
    let expected: Vec<u32> = (lo..=hi).step_by(step as usize).collect();
    (step > 1 && values[0] == lo && values == expected.as_slice()).then_some(step)
}

fn is_contiguous(values: &[u32]) -> bool {
    values.windows(2).all(|w| w[1] == w[0] + 1)
}

fn range_or_list(values: &[u32], name: impl Fn(u32) -> String) -> String {
    if values.len() >= 3 && is_contiguous(values) {
        format!("{} through {}", name(values[0]), name(values[values.len() - 1]))
    } else {
        list(&values.iter().map(|&v| name(v)).collect::<Vec<_>>())
    }
}

/// "a", "a and b", "a, b and c".
fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |c| c.to_ascii_uppercase().to_string() + chars.as_str())
}

#[cfg(test)]
mod tests {
    use crate::CronSchedule;

    #[track_caller]
    fn says(expr: &str, expected: &str) {
        assert_eq!(CronSchedule::parse(expr).unwrap().describe(), expected, "{expr}");
    }

    #[test]
    fn describes_common_expressions() {
        says("30 9 * * MON-FRI", "At 09:30, Monday through Friday");
        says("*/15 * * * *", "Every 15 minutes");
        says("0 0 L * *", "At 00:00 on the last day of the month");
        says("* * * * *", "Every minute");
        says("@hourly", "Every hour");
        says("@daily", "At 00:00");
        says("@weekly", "At 00:00, only on Sunday");
        says("@yearly", "At 00:00 on day 1 of the month, only in January");
        says("0 9,17 * * *", "At 09:00 and 17:00");
        says("5 * * * *", "At 5 minutes past every hour");
        says("0 */2 * * *", "Every 2 hours");
        says("*/7 9-17 * * 1-5", "Every 7 minutes, between 09:00 and 17:59, Monday through Friday");
        says("0 9-17 * * *", "Every hour from 09:00 through 17:00");
        says("*/10 * * * * *", "Every 10 seconds");
        says("30 0 9 * * *", "At 09:00:30");
        says("0 0 LW * *", "At 00:00 on the last weekday of the month");
        says("0 0 15W * *", "At 00:00 on the weekday nearest day 15 of the month");
        says("0 0 * * 5L", "At 00:00, on the last Friday of the month");
        says("0 0 * * 5#3", "At 00:00, on the third Friday of the month");
        says("0 0 1 * 5#3", "At 00:00 on day 1 of the month or on the third Friday of the month");
        says("0 0 1,15 * *", "At 00:00 on days 1 and 15 of the month");
        says("0 0 1,L * *", "At 00:00 on day 1 and the last day of the month");
        says("0 12 * 1-3 *", "At 12:00, in January through March");
        says("0 12 1 */3 *", "At 12:00 on day 1 of the month, every 3 months");
        says("0 0 */2 * 1", "At 00:00 on every 2nd day of the month, if it is Monday");
        says("0 0 13 * 5", "At 00:00 on day 13 of the month or on Friday");
        says("0,30 8-9 * * *", "At 08:00, 08:30, 09:00 and 09:30");
        says("15,45 * * * *", "At minutes 15 and 45");
        says("0 8,12,18,22,23 * * *", "At 08:00, 12:00, 18:00, 22:00 and 23:00");
    }
}
