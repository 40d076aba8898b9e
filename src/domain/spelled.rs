//! `spelled_enum!`: a fieldless enum whose variants are spelled once.
//!
//! Statuses, states, roles and kinds travel as text: in the API (serde and
//! the OpenAPI schema), in the store's columns, in metric labels and log
//! lines. Written by hand, each spelling appeared three times (a serde
//! rename, `as_str`, `FromStr`) and could drift; here the one literal next
//! to each variant feeds all of them.

/// Declares the enum with `Debug, Clone, Copy, PartialEq, Eq, Hash` and
/// serde/schemars derives that use the given spellings, plus `ALL`,
/// `as_str`, `parse`, `Display` and a `FromStr` whose error names the
/// accepted values. `$what` names the thing in that error ("compression").
/// Further derives (`Default`, `PartialOrd`) go in the attributes.
macro_rules! spelled_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            serde::Serialize, serde::Deserialize, schemars::JsonSchema,
        )]
        $vis enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; <[&str]>::len(&[$($text),+])] = [$($name::$variant),+];

            /// The one spelling of this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value spelled `s`, if any.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
                $name::parse(s).ok_or_else(|| {
                    format!(
                        "{} must be one of {} (got {:?})",
                        $what,
                        [$($text),+].join(", "),
                        s
                    )
                })
            }
        }
    };
}

pub(crate) use spelled_enum;

#[cfg(test)]
mod tests {
    spelled_enum! {
        /// A test enum.
        #[derive(Default, PartialOrd, Ord)]
        enum Fruit("fruit") {
            #[default]
            Apple = "apple",
            /// Sour.
            BloodOrange = "blood_orange",
        }
    }

    #[test]
    fn every_value_round_trips_through_its_one_spelling() {
        for f in Fruit::ALL {
            assert_eq!(f.as_str().parse::<Fruit>().unwrap(), f);
            assert_eq!(f.to_string(), f.as_str());
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.as_str()));
            assert_eq!(serde_json::from_str::<Fruit>(&json).unwrap(), f);
        }
        assert_eq!(Fruit::default(), Fruit::Apple);
        assert!(Fruit::Apple < Fruit::BloodOrange);
    }

    #[test]
    fn unknown_spellings_are_refused_with_the_accepted_ones() {
        assert_eq!(Fruit::parse("pear"), None);
        assert_eq!(
            "pear".parse::<Fruit>().unwrap_err(),
            "fruit must be one of apple, blood_orange (got \"pear\")"
        );
        assert!(serde_json::from_str::<Fruit>("\"Apple\"").is_err());
    }

    #[test]
    fn the_schema_lists_the_spellings() {
        let schema = serde_json::to_string(&schemars::schema_for!(Fruit)).unwrap();
        assert!(schema.contains("\"apple\""), "{schema}");
        assert!(schema.contains("\"blood_orange\""), "{schema}");
        assert!(schema.contains("Sour."), "{schema}");
    }
}
